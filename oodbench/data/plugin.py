"""Registers the suite files shipped under benchmarks/suites and any in $OODBENCH_SUITES_PATH."""

from __future__ import annotations

import os
from pathlib import Path

from oodbench import hookimpl
from oodbench.hookspecs import Register
from oodbench.paths import REPO_ROOT


def suite_dirs() -> list[Path]:
    dirs = [REPO_ROOT / "benchmarks" / "suites"]
    extra = os.environ.get("OODBENCH_SUITES_PATH", "")
    dirs += [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return [d for d in dirs if d.is_dir()]


@hookimpl
def register_suites(register: Register) -> None:
    for directory in suite_dirs():
        register(directory)

"""Registers the suite files shipped in the package (oodbench/suites) and any in
$OODBENCH_SUITES_PATH.

The suites and the class lists they read (oodbench/classlists, beside them: suites name them as
``file: ../classlists/x.txt``) are package data, found with ``importlib.resources``, so a wheel
install has them as well as a checkout.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from oodbench import hookimpl
from oodbench.hookspecs import Register


def builtin_suites_dir() -> Path:
    """The suites shipped inside the oodbench package (a real folder: suites are read as files,
    with includes and class lists relative to them)."""
    return Path(str(resources.files("oodbench") / "suites"))


def suite_dirs() -> list[Path]:
    dirs = [builtin_suites_dir()]
    extra = os.environ.get("OODBENCH_SUITES_PATH", "")
    dirs += [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return [d for d in dirs if d.is_dir()]


@hookimpl
def register_suites(register: Register) -> None:
    for directory in suite_dirs():
        register(directory)

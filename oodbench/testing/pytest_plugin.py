"""The pytest plugin of :mod:`oodbench.testing` (entry point ``pytest11``): fixtures for the
tests of oodbench plugins. None is autouse; ask for ``oodbench_isolated`` (or a fixture that
uses it) to keep a test's cache, results and registry to itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from oodbench.env import MethodEnv
    from oodbench.plugins import Registry


@pytest.fixture
def oodbench_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh oodbench home (cache, results) under ``tmp_path``, no entry-point plugins and a
    fresh process-wide registry. The data folder stays the user's (downloaded data is shared)."""
    from oodbench.paths import data_dir
    from oodbench.plugins import reset_registry

    monkeypatch.setenv("OODBENCH_DATA", str(data_dir()))
    monkeypatch.setenv("OODBENCH_HOME", str(tmp_path / "oodbench-home"))
    monkeypatch.setenv("OODBENCH_LOAD_PLUGINS", "")
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def oodbench_registry(oodbench_isolated: None) -> Registry:
    """A fresh registry: the built-ins and the toy backbone (``toy-colour``), no entry points.
    Add the plugin under test with ``oodbench_registry.add_plugin(module, "name")``."""
    from oodbench.plugins import Registry
    from oodbench.testing.toy import ToyBackbonePlugin

    registry = Registry().load(entry_points=False)
    registry.add_plugin(ToyBackbonePlugin(), "oodbench.testing", "oodbench")
    return registry


@pytest.fixture
def toy_suite(tmp_path: Path) -> Path:
    """A tiny colour suite file (ID red/green/blue, near yellow/magenta, far grey; backbone
    ``toy-colour``): ``oodbench run --suite`` takes its path."""
    from oodbench.testing.toy import write_toy_suite

    return write_toy_suite(tmp_path / "toy-suite")


@pytest.fixture
def toy_env(tmp_path: Path, oodbench_registry: Registry) -> MethodEnv:
    """A real MethodEnv on the toy backbone and a tiny colour suite, on the CPU, seed 0."""
    from oodbench.testing.probes import toy_env as make

    folder = tmp_path / "toy-env"
    folder.mkdir()
    return make(folder, oodbench_registry)

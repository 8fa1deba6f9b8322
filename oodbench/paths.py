"""Where oodbench keeps data, caches and results (overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else default


def home_dir() -> Path:
    """Root of oodbench's per-user state: ``$OODBENCH_HOME`` or ``~/.cache/oodbench``."""
    return _env_path("OODBENCH_HOME", Path.home() / ".cache" / "oodbench")


def data_dir() -> Path:
    """Datasets: ``$OODBENCH_DATA`` or ``<home>/data``."""
    return _env_path("OODBENCH_DATA", home_dir() / "data")


def cache_dir() -> Path:
    """Features, label banks, synthesized images, fine-tuned weights: ``$OODBENCH_CACHE``."""
    return _env_path("OODBENCH_CACHE", home_dir() / "cache")


def results_dir() -> Path:
    """Result records written by ``oodbench run``: ``$OODBENCH_RESULTS`` or ``./results``."""
    return _env_path("OODBENCH_RESULTS", Path.cwd() / "results")

"""The ``offline`` source type: images of the offline catalogue selected by concept or category.

A source spec is the dict a suite file gives, e.g.
``{type: offline, split: test, select: {concept: [cat, dog]}}`` or
``{type: offline, split: test, select: {category: [mammal, bird]}}``; the class key of each
image is the field it was selected by (its concept or its category).

The catalogue (``<data>/offline/catalog.jsonl``, one JSON row per image: ``path``, ``concept``,
``category``, ``split``) and its ``manifest.json`` (``corpus_version``: the content version)
are built by the mini world's distribution, ``oodbench-mini`` (``oodbench data fetch-offline``);
the core only reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

from oodbench.errors import MissingDataError, ParameterError
from oodbench.paths import data_dir as default_data_dir

SELECT_FIELDS = ("concept", "category")
SPLITS = ("train", "test")
# the catalogue content the offline suites were written for (oodbench-mini's CORPUS_VERSION)
CATALOG_VERSION = 2


def catalog_file(data_dir: Path | None = None) -> Path:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    path = root / "offline" / "catalog.jsonl"
    if not path.exists():
        raise MissingDataError(
            f"The offline image catalogue is missing ({path}): run `oodbench data fetch-offline`."
        )
    return path


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def catalog_concepts(data_dir: Path | None = None) -> list[str]:
    """The offline catalogue's concept names (the mini world's classes), sorted, distinct."""
    return sorted({row["concept"] for row in _rows(catalog_file(data_dir))})


def catalog_version(data_dir: Path | None = None) -> int:
    """The content version of the catalogue on disk (``corpus_version`` of its manifest)."""
    manifest = catalog_file(data_dir).parent / "manifest.json"
    try:
        return int(json.loads(manifest.read_text(encoding="utf-8"))["corpus_version"])
    except (OSError, ValueError, KeyError, TypeError):
        raise MissingDataError(
            f"The offline catalogue's manifest is missing or unreadable ({manifest}): run "
            "`oodbench data fetch-offline --force`.") from None


def _check_version(path: Path, data_dir: Path | None) -> None:
    """A built catalogue (one with a manifest) must be the version the suites were written for:
    another version selects other images under the same suite."""
    if not (path.parent / "manifest.json").exists():
        return  # a hand-made catalogue (tests, a user's own): nothing to compare
    found = catalog_version(data_dir)
    if found != CATALOG_VERSION:
        raise MissingDataError(
            f"The offline catalogue ({path.parent}) is version {found}, but the offline suites "
            f"need version {CATALOG_VERSION}: run `oodbench data fetch-offline` (with an "
            f"up-to-date oodbench-mini) to rebuild it.")


def load_offline_source(spec: dict, data_dir: Path | None = None) -> tuple[list[Path], list[str]]:
    """Image paths and class keys (concept or category) of one offline source spec.

    Order is the catalogue's (deterministic). ``select`` must name exactly one of ``concept`` /
    ``category`` with a list of values; ``split`` is ``train`` or ``test`` (default ``test``).
    """
    split = spec.get("split", "test")
    if split not in SPLITS:
        raise ParameterError(f"offline source split must be one of {SPLITS}, got {split!r}.")
    select = spec.get("select") or {}
    fields = [f for f in SELECT_FIELDS if f in select]
    if len(fields) != 1 or set(select) - set(SELECT_FIELDS):
        raise ParameterError(
            f"offline source `select` needs exactly one of {SELECT_FIELDS}, got {sorted(select)}."
        )
    field = fields[0]
    values = select[field]
    wanted = {values} if isinstance(values, str) else set(values)
    path = catalog_file(data_dir)
    _check_version(path, data_dir)
    paths, keys = [], []
    for row in _rows(path):
        if row["split"] == split and row[field] in wanted:
            paths.append(path.parent / row["path"])
            keys.append(row[field])
    return paths, keys

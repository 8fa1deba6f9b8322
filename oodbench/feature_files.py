"""The on-disk form of one feature cache entry: a float32 ``.npy`` array and its ``.json``
sidecar, both written atomically, the sidecar last (an array without one is incomplete).

The sidecar holds the row count, the array's width and SHA-256 and, for image features, each
row's label and path and the images that could not be read. :func:`load_entry` checks all of it
and says in a few words why an entry cannot be trusted, so that it is recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.cache import array_sha256, atomic_write, atomic_write_text


def _save_npy(path: Any, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array, dtype=np.float32))


def save_entry(array_path: Path, array: np.ndarray, meta: dict[str, Any]) -> None:
    """The array, then its sidecar (``.json`` beside it) with the array's width and SHA-256."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    atomic_write(array_path, lambda tmp: _save_npy(tmp, array))
    meta = {**meta, "dim": int(array.shape[1]) if array.ndim == 2 else None,
            "sha256": array_sha256(array)}
    atomic_write_text(array_path.with_suffix(".json"), json.dumps(meta))


def _image_meta_problem(meta: dict[str, Any], n: int) -> str | None:
    """Why an image-feature sidecar's labels / paths / skipped list do not fit (None: they do)."""
    labels, paths, skipped = meta.get("labels"), meta.get("paths"), meta.get("skipped")
    if not (isinstance(labels, list) and len(labels) == n
            and all(isinstance(v, int) for v in labels)):
        return "sidecar labels do not match its rows"
    if not (isinstance(paths, list) and len(paths) == n
            and all(isinstance(p, str) for p in paths)):
        return "sidecar paths do not match its rows"
    if not (isinstance(skipped, list)
            and all(isinstance(x, list) and len(x) == 2 for x in skipped)):
        return "sidecar skipped list is malformed"
    return None


def load_entry(array_path: Path, dim: int | None,
               rows: int | None = None) -> tuple[np.ndarray, dict[str, Any]] | str:
    """(array, sidecar) of a cache entry, or why it cannot be trusted (a short reason)."""
    try:
        meta = json.loads(array_path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"sidecar unreadable: {type(exc).__name__}"
    if not isinstance(meta, dict):
        return f"sidecar holds a {type(meta).__name__}, not an object"
    n = meta.get("rows")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return "sidecar has no row count"
    if rows is not None and n != rows:
        return f"sidecar has {n} rows, expected {rows}"
    if "labels" in meta or "paths" in meta or "skipped" in meta:  # an image-feature entry
        problem = _image_meta_problem(meta, n)
        if problem:
            return problem
    if not isinstance(meta.get("sha256"), str):
        return "sidecar has no checksum (written by an earlier version)"
    try:
        array = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        return f"array unreadable: {' '.join(str(exc).split())[:80]}"
    if array.dtype != np.float32:
        return f"array dtype {array.dtype}, expected float32"
    width = dim if dim is not None else meta.get("dim")
    if array.ndim != 2 or array.shape[0] != n or (width is not None and array.shape[1] != width):
        return f"array shape {tuple(array.shape)}, expected ({n}, {width})"
    if array_sha256(array) != meta["sha256"]:
        return "array checksum mismatch"
    if not np.isfinite(array).all():
        return "array has non-finite values"
    return array, meta


def rows_of(keys: Sequence[str], paths: Sequence[str]) -> list[int] | None:
    """The index in ``keys`` of each of ``paths`` (a subsequence of ``keys``: cached rows keep
    the list's order); None when ``paths`` is not one."""
    rows: list[int] = []
    it = iter(enumerate(keys))
    for path in paths:
        for i, key in it:
            if key == path:
                rows.append(i)
                break
        else:
            return None
    return rows

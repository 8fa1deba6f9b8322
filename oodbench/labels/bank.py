"""Label banks in the cache: keyed by everything that produced them, exportable, importable.

A generated bank is stored at ``<cache>/labels/<key[:2]>/<key>.json`` with its key in
``meta["key"]``. ``oodbench labels export`` copies one out; ``oodbench labels import`` puts a
shared file back at its key, so the generator that would have produced it finds it and runs no
model at all (e.g. MM-OOD labels scored without any LLM).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from oodbench.cache import CONTENT_KEY, ArtifactCache
from oodbench.errors import OODBenchError
from oodbench.types import LabelBank


def bank_path(cache: ArtifactCache, key: str) -> Path:
    return cache.path("labels", key, ".json")


def cached_bank(cache: ArtifactCache, key: str, compute: Callable[[], LabelBank],
                log: Callable[[str], None] = lambda _: None, reuse: bool = True) -> LabelBank:
    """Return the bank stored under ``key``, or compute, store (atomically) and return it."""
    path = bank_path(cache, key)
    if reuse and path.exists():
        try:
            bank = LabelBank.load(path)
            log(f"label bank {key[:12]} from cache ({len(bank.labels)} labels)")
            return bank
        except OODBenchError:
            log(f"label bank {key[:12]} is unreadable; regenerating")
    bank = compute()
    bank.meta["key"] = key
    bank.save(path)
    return bank


def list_banks(cache: ArtifactCache) -> list[tuple[str, LabelBank]]:
    out = []
    for path in sorted((cache.root / "labels").glob("*/*.json")):
        try:
            out.append((path.stem, LabelBank.load(path)))
        except OODBenchError:
            continue
    return out


def find_bank(cache: ArtifactCache, ref: str) -> Path:
    """A bank file path, or a (prefix of a) cache key."""
    if Path(ref).exists():
        return Path(ref)
    matches = [p for p in (cache.root / "labels").glob(f"*/{ref}*.json")] if ref else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise OODBenchError(f"No label bank {ref!r}: give a file or a key from `oodbench labels "
                            f"list`.")
    raise OODBenchError(f"Label bank key {ref!r} is ambiguous ({len(matches)} matches); "
                        f"give more characters.")


def export_bank(cache: ArtifactCache, ref: str, out: Path) -> Path:
    source = find_bank(cache, ref)
    LabelBank.load(source)  # validate before sharing
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out)
    return out


def import_bank(cache: ArtifactCache, file: Path) -> tuple[str, LabelBank]:
    bank = LabelBank.load(file)
    key = bank.meta.get("key")
    if not key:
        raise OODBenchError(f"{file} has no cache key (meta.key): it was not exported by "
                            f"oodbench; use it with the `file` label generator instead.")
    if not isinstance(key, str) or not CONTENT_KEY.fullmatch(key):
        raise OODBenchError(f"{file}: meta.key {str(key)[:40]!r} is not a cache key (64 hex "
                            f"characters); the file was altered. Use it with the `file` label "
                            f"generator instead.")
    bank.save(bank_path(cache, key))
    return key, bank

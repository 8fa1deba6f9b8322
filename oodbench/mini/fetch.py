"""Obtain the offline world's packages with the ordinary package clients and build the catalogue.

``apt-get download`` fetches three Debian packages and ``npm pack`` the emoji images; each
archive is checked against a pinned sha256, unpacked under ``<data>/offline/raw/<pkg>/`` and
turned into ``<data>/offline/catalog.jsonl`` + normalised PNGs by :mod:`oodbench.mini.corpus`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oodbench.errors import MissingDataError
from oodbench.mini import corpus
from oodbench.paths import data_dir as default_data_dir


@dataclass(frozen=True)
class Package:
    name: str
    client: str  # "apt" | "npm"
    version: str
    filename: str  # what the client writes into the current directory
    sha256: str

    @property
    def command(self) -> list[str]:
        if self.client == "apt":
            return ["apt-get", "download", f"{self.name}={self.version}"]
        return ["npm", "pack", f"{self.name}@{self.version}"]


# Versions and checksums observed on Debian bookworm / the npm registry (2026-11-23).
PACKAGES = (
    Package(
        "openclipart-png",
        "apt",
        "1:0.18+dfsg-19",
        "openclipart-png_1%3a0.18+dfsg-19_all.deb",
        "f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02",
    ),
    Package(
        "tuxpaint-stamps-default",
        "apt",
        "2022.06.04-1",
        "tuxpaint-stamps-default_2022.06.04-1_all.deb",
        "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34",
    ),
    Package(
        "dataset-fashion-mnist",
        "apt",
        "0.0~git20200523.55506a9-1",
        "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
        "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
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


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    tool = cmd[0]
    if shutil.which(tool) is None:
        raise MissingDataError(
            f"Fetching {what} needs `{tool}`, which is not installed: install it "
            f"(`apt-get install {'apt' if tool == 'apt-get' else 'npm'}`) and run "
            f"`{' '.join(cmd)}` again."
        )
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def download(pkg: Package, dest: Path) -> Path:
    """Fetch one archive into ``dest`` (reusing a verified copy) and check its sha256."""
    from oodbench.mini.model import file_sha256

    target = dest / pkg.filename
    if target.exists() and file_sha256(target) == pkg.sha256:
        return target
    proc = _run(pkg.command, dest, pkg.name)
    if proc.returncode != 0 and pkg.client == "apt":
        # a fresh container has no package lists yet
        _run(["apt-get", "update"], dest, pkg.name)
        proc = _run(pkg.command, dest, pkg.name)
    if proc.returncode != 0 or not target.exists():
        err = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MissingDataError(
            f"Could not download {pkg.name} {pkg.version} ({err[0]}): "
            f"run `{' '.join(pkg.command)}` to see why."
        )
    got = file_sha256(target)
    if got != pkg.sha256:
        target.unlink()
        raise MissingDataError(
            f"{pkg.filename} has sha256 {got}, expected {pkg.sha256}: the registry served a "
            f"different file; run `{' '.join(pkg.command)}` and compare."
        )
    return target


def unpack(pkg: Package, archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if pkg.client == "apt":
        proc = _run(["dpkg-deb", "-x", str(archive), str(dest)], dest, pkg.name)
        if proc.returncode != 0:
            raise MissingDataError(
                f"Could not unpack {archive.name}: run `dpkg-deb -x {archive} {dest}`."
            )
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")


def fetch_offline(data_dir: Path | None = None, force: bool = False) -> Path:
    """Download, verify and unpack the packages, build the catalogue; return ``<data>/offline``.

    Idempotent (a matching ``manifest.json`` returns at once) and atomic (built in a temporary
    folder next to the target, then renamed into place).
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    target = root / "offline"
    manifest = target / "manifest.json"
    built = manifest.exists() and (target / "catalog.jsonl").exists()
    if not force and built and json.loads(manifest.read_text()) == _manifest():
        return target
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".offline-", dir=root))
    try:
        for pkg in PACKAGES:
            unpack(pkg, download(pkg, downloads), tmp / "raw" / pkg.name)
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

"""Obtain the offline world's packages and build its catalogue (``oodbench data fetch-offline``).

Each pinned package (:data:`PACKAGES`) is downloaded and unpacked by :mod:`oodbench.download`
(straight over HTTP(S) from a Debian mirror or the npm registry, checked against its sha256,
unpacked in pure Python) under ``<data>/offline/raw/<pkg>/`` and turned into
``<data>/offline/catalog.jsonl`` + normalised PNGs by :mod:`oodbench_mini.corpus`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from oodbench.download import Package, Progress, download, unpack
from oodbench.paths import data_dir as default_data_dir
from oodbench_mini import corpus

# Versions and checksums observed on Debian bookworm / the npm registry.
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
    # Twemoji (graphics CC-BY 4.0): test-only renderings of the test-split emoji
    Package(
        "emoji-datasource-twitter",
        "npm",
        "16.0.0",
        "emoji-datasource-twitter-16.0.0.tgz",
        "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
    ),
)


def _manifest() -> dict:
    """What a finished catalogue must have been built from; a mismatch triggers a rebuild."""
    return {
        "corpus_version": corpus.CORPUS_VERSION,
        "packages": {p.name: {"version": p.version, "sha256": p.sha256} for p in PACKAGES},
    }


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

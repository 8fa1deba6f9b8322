"""Feature encoding sharded across processes (RANK / WORLD_SIZE), simulated in one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench import shards
from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.cache import ArtifactCache, content_key
from oodbench.data.sources import ImageList, resolve_source
from oodbench.errors import OODBenchError
from oodbench.features import FeatureStore
from oodbench.types import FeatureSet, RunContext
from tests.toy import ToyColourBackbone, write_colour_images

BATCH = 3  # 11 images: batches 0-2 | 3-5 | 6-8 | 9-10; two parts: rows 0-5 and 6-10


@pytest.fixture
def images(tmp_path) -> ImageList:
    root = tmp_path / "imgs"
    for colour, n, seed in (("red", 4, 1), ("blue", 4, 2), ("grey", 2, 3)):
        write_colour_images(root, colour, n, seed)
    (root / "grey_009.png").write_bytes(b"not a png")  # skipped, in part 1
    return resolve_source({"type": "imagefolder", "root": str(root)}, "x", None)


@pytest.fixture
def toy() -> ToyColourBackbone:
    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    return backbone


def _same(a: FeatureSet, b: FeatureSet) -> None:
    assert torch.allclose(a.features, b.features, atol=1e-6)
    assert a.paths == b.paths and a.skipped == b.skipped and np.array_equal(a.labels, b.labels)


def _part_file(cache: Path, key: str, rows: range, suffix: str) -> Path:
    return ArtifactCache(cache).path("feature-parts", content_key(key, "rows", rows.start,
                                                                  rows.stop), suffix)


def test_part_rows_are_contiguous_disjoint_and_cut_at_batches():
    assert shards.part_rows(11, 2, 3) == [range(0, 6), range(6, 11)]
    assert shards.part_rows(11, 3, 3) == [range(0, 3), range(3, 6), range(6, 11)]
    assert shards.part_rows(2, 3, 3) == [range(0, 0), range(0, 0), range(0, 2)]
    for n, parts, batch in ((1000, 8, 256), (50_000, 7, 256), (5, 2, 1)):
        rows = shards.part_rows(n, parts, batch)
        assert [i for r in rows for i in r] == list(range(n))
        assert all(r.start % batch == 0 for r in rows if r)


def test_single_process_keys_and_files_are_unchanged(tmp_path, images, toy, monkeypatch):
    """WORLD_SIZE unset or 1: the key existing caches were written under, the same two files,
    no part files, the same bytes."""
    ctx = RunContext(batch_size=BATCH)
    legacy = content_key("image-features/1", toy.fingerprint(), images.fingerprint)
    written = {}
    for name, size in (("unset", None), ("one", "1")):
        monkeypatch.delenv("WORLD_SIZE", raising=False)
        if size:
            monkeypatch.setenv("WORLD_SIZE", size)
            monkeypatch.setenv("RANK", "0")
        store = FeatureStore(ArtifactCache(tmp_path / name))
        store.images(toy, images, ctx)
        assert store.image_key(toy, images) == legacy
        files = sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*")
                       if p.is_file())
        assert [str(f) for f in files] == [f"features/{legacy[:2]}/{legacy}.json",
                                           f"features/{legacy[:2]}/{legacy}.npy"]
        written[name] = [(tmp_path / name / f).read_bytes() for f in files]
    assert written["unset"] == written["one"]


def test_two_ranks_concurrently_equal_one_process(tmp_path, images, toy):
    """Rank 0 (a thread) encodes its part and waits while rank 1 holds part 1; rank 1 then
    encodes only its part; both assemble the single-process features, in order."""
    ctx = RunContext(batch_size=BATCH)
    single = FeatureStore(ArtifactCache(tmp_path / "single")).images(toy, images, ctx)
    key = FeatureStore(ArtifactCache(tmp_path)).image_key(toy, images)
    first, second = shards.part_rows(len(images), 2, BATCH)
    # rank 1 has started on another host: its lock, with a fresh heartbeat
    lock = _part_file(tmp_path / "c", key, second, ".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"rank": 1, "host": "elsewhere", "pid": 1}))
    stores = [FeatureStore(ArtifactCache(tmp_path / "c"), shard=(r, 2)) for r in (0, 1)]
    lines: list[str] = []
    stores[0].poll_s, stores[0].log = 0.02, lines.append
    out: dict[int, FeatureSet] = {}
    waiter = threading.Thread(target=lambda: out.update({0: stores[0].images(toy, images,
                                                                                ctx)}))
    waiter.start()
    deadline = time.monotonic() + 30
    while not _part_file(tmp_path / "c", key, first, ".json").exists():
        assert time.monotonic() < deadline and waiter.is_alive()
        time.sleep(0.02)
    time.sleep(0.1)
    assert waiter.is_alive() and stores[0].stats.images_encoded == 6  # its part only: waits
    # rank 1 restarts here: its own earlier lock does not stop it
    out[1] = stores[1].images(toy, images, ctx)
    waiter.join(30)
    assert not waiter.is_alive()
    assert stores[1].stats.images_encoded == 4 and stores[0].stats.images_encoded == 6
    for rank in (0, 1):
        _same(out[rank], single)
    assert len(lines) == 1 and "shard 0 of 2 waits for rows 6-11" in lines[0]
    assert not lock.exists()
    # the whole set sits under the single-process key: a later one-process run reuses it
    again = FeatureStore(ArtifactCache(tmp_path / "c"))
    _same(again.images(toy, images, ctx), single)
    assert again.stats.images_encoded == 0 and again.stats.cache_hits == 1


def test_ranks_in_turn_and_a_restarted_shard_redoes_only_its_part(tmp_path, images, toy,
                                                                   monkeypatch):
    """As the launcher's env sets them, one rank after the other (as SynOOD's last synthesis
    shard, alone after the others exited): nobody holds part 1, so rank 0 encodes it too."""
    ctx = RunContext(batch_size=BATCH)
    single = FeatureStore(ArtifactCache(tmp_path / "single")).images(toy, images, ctx)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    store = FeatureStore(ArtifactCache(tmp_path / "c"))
    _same(store.images(toy, images, ctx), single)
    assert store.stats.images_encoded == 10
    # rank 1 died before the whole set was written, its part lost: only its part is redone
    key = store.image_key(toy, images)
    second = shards.part_rows(len(images), 2, BATCH)[1]
    store.cache.path("features", key, ".json").unlink()
    _part_file(tmp_path / "c", key, second, ".json").unlink()
    monkeypatch.setenv("RANK", "1")
    restarted = FeatureStore(ArtifactCache(tmp_path / "c"))
    _same(restarted.images(toy, images, ctx), single)
    assert restarted.stats.images_encoded == 4


def test_dead_or_silent_holders_are_taken_over(tmp_path):
    path = tmp_path / "part.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    host = socket.gethostname()
    path.write_text(json.dumps({"rank": 1, "host": host, "pid": int(dead.stdout)}))
    assert shards.PartLock(path, 0).holder() is None and shards.PartLock(path, 0).claim()
    path.write_text(json.dumps({"rank": 1, "host": "elsewhere", "pid": 1}))
    assert shards.PartLock(path, 0).holder() is not None  # another host, heartbeat fresh
    old = time.time() - 2 * shards.STALE_AFTER_S
    os.utime(path, (old, old))
    assert shards.PartLock(path, 0).holder() is None and shards.PartLock(path, 0).claim()


def test_bad_rank_fails_on_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(OODBenchError, match=r"RANK=2 is outside 0\.\.1"):
        shards.world()
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: RANK is not read
    assert shards.world() == (0, 1)


@pytest.mark.parametrize("decode", ["cpu", "gpu"])
def test_open_clip_both_decode_paths(tmp_path, tiny_clip_config, decode):
    """A real (tiny) CLIP on JPEGs, both decode paths: same batches, so the same features."""
    backbone = OpenCLIPBackbone(model=tiny_clip_config, pretrained="")
    backbone.load(torch.device("cpu"))
    root = tmp_path / "jpegs"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        pixels = rng.integers(0, 255, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((40 + i, 30)).save(root / f"{i}.jpg", quality=90)
    images = resolve_source({"type": "imagefolder", "root": str(root)}, "j", None)
    ctx = RunContext(batch_size=2, decode=decode)
    quiet = dict(log=lambda _: None)
    single = FeatureStore(ArtifactCache(tmp_path / "single"), **quiet).images(backbone, images,
                                                                              ctx)
    parts = [FeatureStore(ArtifactCache(tmp_path / "c"), shard=(r, 3), **quiet)
             for r in (2, 0, 1)]  # each finds nobody on the others' parts: takes them over
    results = [store.images(backbone, images, ctx) for store in parts]
    assert parts[0].stats.images_encoded == 7 and parts[1].stats.cache_hits == 1
    _same(results[0], single)
    assert torch.equal(results[0].features, single.features)  # the very same batches

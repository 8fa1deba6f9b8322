"""Feature encoding split across the processes of a launch (oodbench.shards), simulated in one
process: accelerate's own ``split_between_processes`` on a stand-in state, threads for the
processes. tests/test_accelerate.py launches real processes."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench import shards
from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.cache import ArtifactCache, content_key
from oodbench.data.sources import ImageList, resolve_source
from oodbench.errors import MissingDataError, OODBenchError
from oodbench.features import FeatureStore
from oodbench.types import FeatureSet, RunContext
from tests.toy import ToyColourBackbone, write_colour_images

BATCH = 3  # 11 images: batches 0-2 | 3-5 | 6-8 | 9-10; two processes: rows 0-5 and 6-10


class State:
    """What a process of a launch knows (index, count, device), with accelerate's own
    ``split_between_processes``."""

    def __init__(self, index: int, count: int, device: str = "cpu") -> None:
        self.process_index, self.num_processes, self.device = index, count, device

    def split_between_processes(self, inputs: list[Any]) -> Any:
        from accelerate import PartialState

        return PartialState.split_between_processes(self, inputs)


class World:
    """The collective calls of ``count`` threads: each gather waits for all of them."""

    def __init__(self, count: int) -> None:
        self.barrier = threading.Barrier(count, timeout=30)
        self.slots: list[Any] = [None] * count

    def exchange(self, index: int, item: Any) -> list[Any]:
        self.slots[index] = item
        self.barrier.wait()
        out = list(self.slots)
        self.barrier.wait()
        return out


@dataclasses.dataclass(frozen=True)
class ThreadProcesses(shards.Processes):
    world: Any = None

    def gather(self, item: Any) -> list[Any]:
        return self.world.exchange(self.index, item)


def launch(count: int, work: Any) -> list[Any]:
    """``work(processes)`` in ``count`` threads, one per simulated process; their results."""
    world = World(count)
    out: list[Any] = [None] * count

    def one(index: int) -> None:
        try:
            out[index] = work(ThreadProcesses(index, count, State(index, count), world))
        except Exception as exc:  # handed to the test (a thread left behind times out)
            out[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return out


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
    assert torch.equal(a.features, b.features)
    assert a.paths == b.paths and a.skipped == b.skipped and np.array_equal(a.labels, b.labels)


def _files(root: Path, kind: str) -> list[Path]:
    return sorted((root / kind).rglob("*.json")) if (root / kind).exists() else []


def test_shares_are_contiguous_whole_batches_covering_the_list():
    def shares(total: int, count: int, batch: int) -> list[range]:
        return [shards.Processes(i, count, State(i, count)).share(total, batch)
                for i in range(count)]

    assert shares(11, 2, 3) == [range(0, 6), range(6, 11)]
    assert shares(11, 3, 3) == [range(0, 6), range(6, 9), range(9, 11)]
    assert shares(2, 3, 3) == [range(0, 2), range(0), range(0)]  # fewer batches than processes
    for total, count, batch in ((1000, 8, 256), (50_000, 7, 256), (5, 2, 1)):
        got = shares(total, count, batch)
        assert [i for r in got for i in r] == list(range(total))
        assert all(r.start % batch == 0 for r in got if r)
    assert shards.SINGLE.share(7, 3) == range(7) and shards.SINGLE.gather("x") == ["x"]


def test_single_process_keys_and_files_are_unchanged(tmp_path, images, toy, monkeypatch):
    """WORLD_SIZE unset or 1: the key existing caches were written under, the same two files,
    no part files, the same bytes; accelerate is not imported."""
    ctx = RunContext(batch_size=BATCH)
    legacy = content_key("image-features/1", toy.fingerprint(), images.fingerprint)
    written = {}
    monkeypatch.setitem(sys.modules, "accelerate", None)  # importing it would fail
    for name, size in (("unset", None), ("one", "1")):
        monkeypatch.delenv("WORLD_SIZE", raising=False)
        if size:
            monkeypatch.setenv("WORLD_SIZE", size)
        store = FeatureStore(ArtifactCache(tmp_path / name))
        store.images(toy, images, ctx)
        assert store.image_key(toy, images) == legacy
        files = sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*")
                       if p.is_file() and "content-index" not in p.parts)
        assert [str(f) for f in files] == [f"features/{legacy[:2]}/{legacy}.json",
                                           f"features/{legacy[:2]}/{legacy}.npy"]
        written[name] = [(tmp_path / name / f).read_bytes() for f in files]
    assert written["unset"] == written["one"]


def test_two_processes_equal_one_and_a_restart_redoes_only_missing_parts(tmp_path, images,
                                                                         toy):
    """Each process encodes its share and writes it as a part; after the gather both hold the
    one-process features; only the main process writes the whole entry. Restarted with the
    whole entry and one part gone, only that part is encoded again."""
    ctx = RunContext(batch_size=BATCH)
    single = FeatureStore(ArtifactCache(tmp_path / "single")).images(toy, images, ctx)
    cache = tmp_path / "c"

    def encode(procs: shards.Processes) -> tuple[FeatureSet, int]:
        store = FeatureStore(ArtifactCache(cache), log=lambda _: None, processes=procs)
        return store.images(toy, images, ctx), store.stats.images_encoded

    results = launch(2, encode)
    for got, _ in results:
        _same(got, single)
    assert [n for _, n in results] == [6, 4]  # rows 0-5 | rows 6-10, one unreadable
    (whole,) = _files(cache, "features")
    parts = _files(cache, "feature-parts")
    assert len(parts) == 2 and whole.read_bytes() == _files(tmp_path / "single", "features")[0] \
        .read_bytes()
    whole.unlink()
    # rows 6-10: process 1's part, the one holding the unreadable file
    (last,) = [p for p in parts if json.loads(p.read_text())["skipped"]]
    last.unlink()
    again = launch(2, encode)
    assert [n for _, n in again] == [0, 4]
    for got, _ in again:
        _same(got, single)
    # the whole set sits under the single-process key: a later one-process run reuses it
    later = FeatureStore(ArtifactCache(cache))
    _same(later.images(toy, images, ctx), single)
    assert later.stats.images_encoded == 0 and later.stats.cache_hits == 1


def test_processes_at_different_steps_stop_on_one_line():
    def step(procs: shards.Processes) -> bool:
        return procs.agree(f"encode set-{procs.index}", True)

    results = launch(2, step)
    assert all(isinstance(r, OODBenchError) and "reached different steps" in str(r)
               for r in results)


def test_launch_without_accelerate_or_with_a_bad_size_is_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(MissingDataError, match="pip install accelerate"):
        shards.processes("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(OODBenchError, match="WORLD_SIZE='two' is not an integer"):
        shards.processes("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert shards.processes("cuda") is shards.SINGLE


def test_each_process_computes_on_its_own_gpu():
    second = shards.Processes(1, 2, State(1, 2, device="cuda:1"))
    assert second.device(torch.device("cuda")) == torch.device("cuda", 1)
    assert second.device(torch.device("cuda", 0)) == torch.device("cuda", 0)  # explicit wins
    assert second.device(torch.device("cpu")) == torch.device("cpu")
    assert shards.SINGLE.device(torch.device("cuda")) == torch.device("cuda")


@pytest.mark.parametrize("decode", ["cpu", "gpu"])
def test_open_clip_both_decode_paths(tmp_path, tiny_clip_config, decode):
    """A real (tiny) CLIP on JPEGs, both decode paths, split across three processes: the same
    batches, so the same features as one process, bit for bit."""
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
    results = launch(3, lambda procs: FeatureStore(
        ArtifactCache(tmp_path / "c"), processes=procs, **quiet).images(backbone, images, ctx))
    for got in results:
        _same(got, single)

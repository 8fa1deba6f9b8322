"""Issue 21, "the cache never lies" (+ "nonsense is refused"). Each case: what happens, what is
left on disk, and the recovery (the next run reuses a sound cache and encodes nothing).

1. image features are keyed by content: an image rewritten in place with the same size (and
   its old mtime put back) is encoded again; an image unreadable on one run is retried on the
   next; re-keying a folder reads no file twice (the content index);
2. corrupt cache entries are recomputed with one log line: feature sidecars, arrays, text
   embeddings (and label banks, which already healed);
3. a broken cached SynOOD image is made again, alone;
4. an OOD set that shares images with the ID set, an empty class folder and a dangling image
   link each stop the run with one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import textwrap
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import oodbench
import oodbench.plugins as plugins_module
from oodbench import cache as cache_module
from oodbench.cache import ArtifactCache
from oodbench.cli import app
from oodbench.data.sources import resolve_source
from oodbench.features import FeatureStore
from oodbench.generative import ImageGenerator
from oodbench.types import RunContext
from tests import toy
from tests.reliability import matrix
from tests.toy import ToyColourBackbone, write_colour_images

CTX = RunContext(batch_size=4)


@pytest.fixture(autouse=True)
def _no_racy_window(monkeypatch):
    """Files written by a test are seconds old at most; let the index memoise them anyway."""
    index = getattr(cache_module, "ContentIndex", None)  # (absent before issue 21)
    if index is not None:
        monkeypatch.setattr(index, "racy_s", 0.0)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _backbone() -> ToyColourBackbone:
    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    return backbone


def _bmp(path: Path, rgb: tuple[int, int, int]) -> None:
    """An uncompressed image: its size depends only on its dimensions, never on its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), rgb).save(path, format="BMP")


class _Log(list):
    def __call__(self, message: str) -> None:
        self.append(message)


def _encode(folder: Path, cache: Path, log: _Log | None = None):
    """Resolve the folder afresh (as a new run does) and encode it through the cache."""
    images = resolve_source({"type": "imagefolder", "root": str(folder)}, "set", None)
    store = FeatureStore(ArtifactCache(cache), log=log)
    before = toy.CALLS["images"]
    feats = store.images(_backbone(), images, CTX)
    return images, store, feats, toy.CALLS["images"] - before


def _sidecar(store: FeatureStore, images) -> dict:
    key = store.image_key(_backbone(), images)
    return json.loads(store.cache.path("features", key, ".json").read_text())


# -- 1. keys by content; read failures are not permanent ---------------------------------------
def _rewrite_same_size(folder: Path) -> None:
    path = folder / "c.bmp"
    stat = path.stat()
    _bmp(path, (0, 0, 255))  # red -> blue, same byte count
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `rsync -t`/`cp -p` leave it
    assert path.stat().st_size == stat.st_size


def _unreadable_then_restored(folder: Path) -> None:
    pass  # the damage is done inside the first run (see the test)


KEY_CASES = {"changed-in-place-same-size": _rewrite_same_size,
             "deleted-mid-run-then-restored": _unreadable_then_restored}


@matrix("features follow the files' content: a changed image is re-encoded, a restored one "
        "read again",
        None, 'the fresh features', 'none needed')
@pytest.mark.parametrize("case", list(KEY_CASES))
def test_features_follow_the_images_content(tmp_path, monkeypatch, case):
    folder, cache = tmp_path / "imgs", tmp_path / "cache"
    for name, rgb in (("a", (0, 255, 0)), ("b", (0, 255, 0)), ("c", (255, 0, 0))):
        _bmp(folder / f"{name}.bmp", rgb)
    if case == "deleted-mid-run-then-restored":
        saved = (folder / "c.bmp").read_bytes()
        images = resolve_source({"type": "imagefolder", "root": str(folder)}, "set", None)
        store = FeatureStore(ArtifactCache(cache))
        store.image_key(_backbone(), images)  # the run's key is made while the file is there
        (folder / "c.bmp").unlink()  # ... then it goes away before it is read
        first = store.images(_backbone(), images, CTX)
        assert len(first) == 2 and [Path(p).name for p, _ in first.skipped] == ["c.bmp"]
        (folder / "c.bmp").write_bytes(saved)
    else:
        _encode(folder, cache)
        KEY_CASES[case](folder)
    # what happens: the next run encodes the changed / restored image and gives its features
    images, store, got, encoded = _encode(folder, cache)
    _, _, fresh, _ = _encode(folder, tmp_path / "fresh-cache")
    assert encoded >= 1 and len(got) == 3 and not got.skipped
    assert torch.equal(got.features, fresh.features) and got.paths == fresh.paths
    # on disk: the entry holds every image, no skip
    meta = _sidecar(store, images)
    assert meta["rows"] == 3 and meta["skipped"] == [] and meta["paths"] == images.keys
    # recovery: a third run is a plain cache hit
    _, store, again, encoded = _encode(folder, cache)
    assert encoded == 0 and store.stats.cache_hits == 1
    assert torch.equal(again.features, fresh.features)


@matrix('retried on every run, skipped (recorded) while unreadable',
        None, 'features of the readable images only', 'fix the file; the next run picks it up')
def test_a_still_unreadable_image_is_tried_again_and_stays_out(tmp_path):
    folder, cache = tmp_path / "imgs", tmp_path / "cache"
    write_colour_images(folder, "red", 3, 0)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    _, _, first, _ = _encode(folder, cache)
    log = _Log()
    _, store, second, encoded = _encode(folder, cache, log)
    assert encoded == 0 and store.stats.cache_hits == 1  # tried, still unreadable: no row
    assert len(second) == 3 and [Path(p).name for p, _ in second.skipped] == ["broken.png"]
    assert second.skipped == first.skipped and torch.equal(second.features, first.features)
    assert len(log) == 1 and "trying again 1 image(s)" in log[0]


@matrix('each file is hashed once, then found in the content index',
        None, 'the index', 'none needed')
def test_the_content_index_reads_each_file_once(tmp_path, monkeypatch):
    from oodbench.cache import ContentIndex

    folder = tmp_path / "imgs"
    write_colour_images(folder, "red", 5, 0)
    reads: list[str] = []
    real = cache_module.file_sha256
    monkeypatch.setattr(cache_module, "file_sha256", lambda p: reads.append(p) or real(p))
    first = resolve_source({"type": "imagefolder", "root": str(folder)}, "set", None)
    index = ContentIndex(tmp_path / "cache")
    first.use_index(index)
    assert len(first.fingerprint) == 64 and len(reads) == 5
    again = resolve_source({"type": "imagefolder", "root": str(folder)}, "set", None)
    again.use_index(index)
    assert again.fingerprint == first.fingerprint and len(reads) == 5  # stat only
    # a corrupt index file is ignored, and rewritten
    for path in (tmp_path / "cache" / ContentIndex.KIND).rglob("*.json"):
        path.write_text("[1, 2")
    third = resolve_source({"type": "imagefolder", "root": str(folder)}, "set", None)
    third.use_index(index)
    assert third.fingerprint == first.fingerprint and len(reads) == 10
    assert ContentIndex(tmp_path / "cache").digests(third.keys) == third.digests()
    assert len(reads) == 10


# -- 2. corrupt entries heal ---------------------------------------------------------------------
def _npy_payload_offset(path: Path) -> int:
    with open(path, "rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        if major == 1:
            np.lib.format.read_array_header_1_0(handle)
        else:
            np.lib.format.read_array_header_2_0(handle)
        return handle.tell()


def _without_rows(npy: Path) -> None:
    meta = json.loads(npy.with_suffix(".json").read_text())
    del meta["rows"]
    npy.with_suffix(".json").write_text(json.dumps(meta))


def _list_sidecar(npy: Path) -> None:
    npy.with_suffix(".json").write_text("[]")


def _zeroed(npy: Path) -> None:
    data = bytearray(npy.read_bytes())
    start = _npy_payload_offset(npy)
    data[start:] = bytes(len(data) - start)  # a valid header over zeros
    npy.write_bytes(bytes(data))


def _truncated(npy: Path) -> None:
    npy.write_bytes(npy.read_bytes()[: -(toy.DIM * 4 + 3)])


FEATURE_DAMAGE = {"sidecar-without-rows": _without_rows, "sidecar-is-a-list": _list_sidecar,
                  "zeroed-array-valid-header": _zeroed, "truncated-array": _truncated}


@matrix('one log line, the entry is recomputed', None, 'the recomputed entry', 'none needed')
@pytest.mark.parametrize("case", list(FEATURE_DAMAGE))
def test_corrupt_feature_entries_are_recomputed(tmp_path, case):
    folder, cache = tmp_path / "imgs", tmp_path / "cache"
    write_colour_images(folder, "red", 3, 0)
    write_colour_images(folder, "blue", 3, 1)
    images, store, good, _ = _encode(folder, cache)
    npy = store.cache.path("features", store.image_key(_backbone(), images), ".npy")
    FEATURE_DAMAGE[case](npy)
    # what happens: recomputed, the same features, one log line naming the set
    log = _Log()
    _, store, healed, encoded = _encode(folder, cache, log)
    assert encoded == 6 and torch.equal(healed.features, good.features)
    assert healed.paths == good.paths and healed.labels.tolist() == good.labels.tolist()
    assert len(log) == 1 and log[0].startswith("features set: cache entry invalid (")
    assert log[0].endswith("); recomputing")
    # on disk: a sound entry again, its checksum that of the array
    meta = json.loads(npy.with_suffix(".json").read_text())
    assert meta["rows"] == 6 and meta["sha256"] == _sha256(np.load(npy))
    # recovery: reused silently
    log = _Log()
    _, store, again, encoded = _encode(folder, cache, log)
    assert encoded == 0 and store.stats.cache_hits == 1 and log == []
    assert torch.equal(again.features, good.features)


def _text_entry(store: FeatureStore, texts: list[str]) -> Path:
    from oodbench.cache import content_key

    key = content_key("text-features/2", _backbone().text_fingerprint(), texts)
    return store.cache.path("texts", key, ".npy")


def _wide(npy: Path) -> None:
    with open(npy, "wb") as handle:  # rows right, one column too many
        np.save(handle, np.ones((2, toy.DIM + 1), dtype=np.float32))


TEXT_DAMAGE = {"text-array-of-the-wrong-width": _wide, "text-array-zeroed": _zeroed,
               "text-array-truncated": _truncated}


@matrix('one log line, the embeddings are recomputed', None, 'the recomputed entry', 'none needed')
@pytest.mark.parametrize("case", list(TEXT_DAMAGE))
def test_corrupt_text_embeddings_are_recomputed(tmp_path, case):
    texts, templates = ["red", "blue"], ["a photo of a {}.", "the {}"]
    store = FeatureStore(ArtifactCache(tmp_path))
    good = store.label_embeddings(_backbone(), texts, templates, CTX)
    TEXT_DAMAGE[case](_text_entry(store, [t.format(x) for t in templates[:1] for x in texts]))
    log = _Log()
    store = FeatureStore(ArtifactCache(tmp_path), log=log)
    before = toy.CALLS["texts"]
    healed = store.label_embeddings(_backbone(), texts, templates, CTX)
    assert toy.CALLS["texts"] - before == 2 and torch.equal(healed, good)
    assert len(log) == 1 and "cache entry invalid (" in log[0] and "recomputing" in log[0]
    npy = _text_entry(store, ["a photo of a red.", "a photo of a blue."])
    assert json.loads(npy.with_suffix(".json").read_text())["sha256"] == \
        _sha256(np.load(npy))
    log = _Log()
    store = FeatureStore(ArtifactCache(tmp_path), log=log)
    before = toy.CALLS["texts"]
    assert torch.equal(store.label_embeddings(_backbone(), texts, templates, CTX), good)
    assert toy.CALLS["texts"] == before and log == []


@matrix('the bank is regenerated', None, 'the regenerated bank', 'none needed')
def test_a_label_bank_without_labels_is_regenerated(tmp_path):
    """Already healed before issue 21 (LabelBank.load validates); kept here as a case."""
    from oodbench.labels.bank import bank_path, cached_bank
    from oodbench.types import LabelBank

    cache, key = ArtifactCache(tmp_path), "ab" * 32
    made = []

    def compute() -> LabelBank:
        made.append(1)
        return LabelBank(["tree", "cloud"], "g")

    cached_bank(cache, key, compute)
    data = json.loads(bank_path(cache, key).read_text())
    del data["labels"]
    bank_path(cache, key).write_text(json.dumps(data))
    log = _Log()
    assert cached_bank(cache, key, compute, log).labels == ["tree", "cloud"] and len(made) == 2
    assert log == [f"label bank {key[:12]} is unreadable; regenerating"]
    assert json.loads(bank_path(cache, key).read_text())["labels"] == ["tree", "cloud"]
    assert cached_bank(cache, key, compute).labels == ["tree", "cloud"] and len(made) == 2


# -- 3. a broken cached SynOOD image is made again ------------------------------------------------
@dataclasses.dataclass
class _Inpainter(ImageGenerator):
    """Pixel-space 'diffusion' (as in the synood tests), counting denoise calls."""

    name = "heal-inpaint"
    resolution: int = 8
    guidance_latent_scale: ClassVar[float] = 1.0
    calls: ClassVar[list[int]] = []

    def text_to_image(self, prompts, seeds):
        raise NotImplementedError

    def noise(self, batch, seed):
        return torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(seed))

    def encode(self, images):
        return images * 2 - 1

    def denoise(self, image_latents, noise, prompts, strength, steps, guidance):
        _Inpainter.calls.append(image_latents.shape[0])
        return (image_latents + strength * 0.5 * noise).clamp(-1, 1)

    def decode(self, latents):
        return (latents + 1) / 2


class _Fakes:
    @oodbench.hookimpl
    def register_image_generators(self, register):
        register(_Inpainter)


def _truncate_png(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def _empty_png(path: Path) -> None:
    path.write_bytes(b"")


PNG_DAMAGE = {"truncated": _truncate_png, "emptied": _empty_png, "deleted": Path.unlink}


@matrix('one log line, only the broken image is made again',
        None, 'the remade image', 'none needed')
@pytest.mark.parametrize("refresh", [(), ("labels",)], ids=["plain", "rerun-from-labels"])
@pytest.mark.parametrize("case", list(PNG_DAMAGE))
def test_a_broken_cached_synood_image_is_made_again(registry, colour_suite, tmp_path, case,
                                                    refresh):
    from oodbench.env import MethodEnv
    from oodbench.runner import resolve_suite
    from oodbench_synood import plugin
    from oodbench_synood.synthesizer import SynOODSynthesizer

    registry.add_plugin(plugin, "synood", "oodbench-synood")
    registry.add_plugin(_Fakes(), "fakes")
    synth = SynOODSynthesizer(inpainter="heal-inpaint", per_class=2, iterations=1,
                              classifier="zero-shot", batch_size=1)

    def synthesize(log: _Log, ctx: RunContext):
        env = MethodEnv(ctx, _backbone(), "toy-colour", resolve_suite(registry,
                        str(colour_suite)), FeatureStore(ArtifactCache(ctx.cache_dir)),
                        registry, log)
        _Inpainter.calls.clear()
        return synth.synthesize(env, None)

    ctx = RunContext(cache_dir=tmp_path / "cache")
    first = synthesize(_Log(), ctx)
    good = {p: np.asarray(Image.open(p)).copy() for p in first.paths}
    assert len(first.paths) == 6 and len(_Inpainter.calls) == 6
    PNG_DAMAGE[case](first.paths[3])
    # what happens: only that image is made again (the same image), with one log line
    log = _Log()
    second = synthesize(log, dataclasses.replace(ctx, refresh=refresh))
    assert len(_Inpainter.calls) == 1 and second.paths == first.paths
    assert len(log) == 1 and "1 cached image(s)" in log[0] and first.paths[3].name in log[0]
    # on disk: every image opens, and is the one made the first time
    for path in second.paths:
        assert np.array_equal(np.asarray(Image.open(path)), good[path])
    # recovery: nothing made on the next run
    log = _Log()
    synthesize(log, ctx)
    assert _Inpainter.calls == [] and log == []


# -- 4. nonsense is refused -----------------------------------------------------------------------
def _suite(tmp_path: Path, id_root: Path, ood_root: Path, class_dirs: str = "") -> Path:
    path = tmp_path / "nonsense.yaml"
    dirs = f", class_dirs: {class_dirs}" if class_dirs else ""
    path.write_text(textwrap.dedent(f"""
        name: nonsense
        version: 1
        backbone: toy-colour
        id:
          name: rgb
          classes: [red, green, blue]
          test: {{type: imagefolder, root: {id_root}{dirs}}}
        prompts: ["a photo of a {{}}."]
        ood:
          - {{name: others, group: far, source: {{type: imagefolder, root: {ood_root}}}}}
        """))
    return path


def _colours(root: Path) -> None:
    for colour, seed in (("red", 1), ("green", 2), ("blue", 3)):
        write_colour_images(root / colour, colour, 4, seed)


def _identical(tmp_path: Path):
    _colours(tmp_path / "id")
    suite = _suite(tmp_path, tmp_path / "id", tmp_path / "id")
    message = "OOD set 'others' shares 12 of its 12 images with the ID set 'rgb'"

    def fix() -> None:
        suite.write_text(suite.read_text().replace(f"root: {tmp_path / 'id'}}}}}",
                                                   f"root: {tmp_path / 'ood'}}}}}"))
        write_colour_images(tmp_path / "ood", "grey", 5, 9)
    return suite, message, fix


def _overlapping(tmp_path: Path):
    _colours(tmp_path / "id")
    write_colour_images(tmp_path / "ood", "grey", 5, 9)
    copies = []
    for i, src in enumerate(sorted((tmp_path / "id" / "red").iterdir())[:3]):
        copies.append(tmp_path / "ood" / f"copy_{i}.png")  # renamed copies: same content
        copies[-1].write_bytes(src.read_bytes())
    message = "OOD set 'others' shares 3 of its 8 images with the ID set 'rgb'"
    return (_suite(tmp_path, tmp_path / "id", tmp_path / "ood"), message,
            lambda: [c.unlink() for c in copies])


def _empty_class_folder(tmp_path: Path):
    _colours(tmp_path / "id")
    (tmp_path / "id" / "teal").mkdir()
    write_colour_images(tmp_path / "ood", "grey", 5, 9)
    suite = _suite(tmp_path, tmp_path / "id", tmp_path / "ood", "[red, teal, blue]")
    message = f"class folder {tmp_path / 'id' / 'teal'} has no images"
    return suite, message, lambda: write_colour_images(tmp_path / "id" / "teal", "green", 4, 5)


def _dangling_link(tmp_path: Path):
    _colours(tmp_path / "id")
    write_colour_images(tmp_path / "ood", "grey", 5, 9)
    link = tmp_path / "ood" / "gone.png"
    link.symlink_to(tmp_path / "elsewhere" / "gone.png")
    message = f"{link} is a broken symbolic link"
    return _suite(tmp_path, tmp_path / "id", tmp_path / "ood"), message, link.unlink


NONSENSE = {"ood-identical-to-id": _identical, "ood-overlapping-id": _overlapping,
            "empty-class-folder": _empty_class_folder, "dangling-image-link": _dangling_link}


@matrix('one line naming the sets / folder / link and the fix',
        2, 'nothing', 'fix the data or the suite')
@pytest.mark.parametrize("case", list(NONSENSE))
def test_nonsense_stops_the_run_on_one_line(registry, tmp_path, monkeypatch, case):
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    suite, message, fix = NONSENSE[case](tmp_path)
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["run", "-m", "mcm", "-s", str(suite), "-o", str(out), "--cache-dir", str(cache),
            "--workers", "0"]
    result = CliRunner().invoke(app, args)
    # what happens: one line naming what is wrong, no traceback, a non-zero exit
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, \
        result.output
    # on disk: no record, no feature encoded
    assert not out.exists() and not list(cache.rglob("*.npy"))
    # recovery: with the data fixed the same command runs
    fix()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.json"))) == 1

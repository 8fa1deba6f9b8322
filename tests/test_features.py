from __future__ import annotations

import numpy as np
import torch

from oodbench.cache import ArtifactCache, atomic_write_text, content_key
from oodbench.data.sources import resolve_source
from oodbench.encoding import encode_with_fallback
from oodbench.features import FeatureStore
from oodbench.types import RunContext
from tests import toy
from tests.toy import ToyColourBackbone, write_colour_images


def test_content_key_is_order_independent_for_dicts():
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})
    assert content_key("x", 1) != content_key("x", 2)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "one")
    try:
        from oodbench.cache import atomic_write

        def fail(tmp):
            tmp.write_text("partial")
            raise RuntimeError("boom")

        atomic_write(target, fail)
    except RuntimeError:
        pass
    assert target.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_incomplete_entry_is_recomputed(tmp_path):
    write_colour_images(tmp_path / "imgs", "red", 4, 0)
    images = resolve_source({"type": "imagefolder", "root": str(tmp_path / "imgs")}, "x", None)
    store = FeatureStore(ArtifactCache(tmp_path / "cache"))
    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    ctx = RunContext(batch_size=3)
    first = store.images(backbone, images, ctx)
    key = store.image_key(backbone, images)
    store.cache.path("features", key, ".json").unlink()  # as if killed before the sidecar
    before = toy.CALLS["images"]
    second = store.images(backbone, images, ctx)
    assert toy.CALLS["images"] - before == 4
    assert torch.allclose(first.features, second.features)


def test_changed_files_change_the_key(tmp_path):
    write_colour_images(tmp_path / "imgs", "red", 3, 0)
    spec = {"type": "imagefolder", "root": str(tmp_path / "imgs")}
    a = resolve_source(spec, "x", None).fingerprint
    write_colour_images(tmp_path / "imgs2", "blue", 1, 0)
    (tmp_path / "imgs2" / "blue_000.png").rename(tmp_path / "imgs" / "extra.png")
    assert resolve_source(spec, "x", None).fingerprint != a


def test_text_features_are_cached(tmp_path):
    store = FeatureStore(ArtifactCache(tmp_path))
    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    ctx = RunContext()
    before = toy.CALLS["texts"]
    a = store.texts(backbone, ["red", "blue"], ctx)
    b = store.texts(backbone, ["red", "blue"], ctx)
    assert toy.CALLS["texts"] - before == 2
    assert torch.equal(a, b)
    ens = store.label_embeddings(backbone, ["red"], ["a {}", "the {}"], ctx)
    assert np.isclose(float(ens.norm()), 1.0)


def test_sub_list_of_embedded_texts_encodes_nothing(tmp_path):
    store = FeatureStore(ArtifactCache(tmp_path))
    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    ctx = RunContext()
    full = store.texts(backbone, ["red", "green", "blue"], ctx)
    before = toy.CALLS["texts"]
    part = store.texts(backbone, ["blue", "red"], ctx)
    assert toy.CALLS["texts"] == before
    assert torch.equal(part, full[[2, 0]])
    # a fresh store (another process) finds the sub-list on disk
    again = FeatureStore(ArtifactCache(tmp_path)).texts(backbone, ["blue", "red"], ctx)
    assert toy.CALLS["texts"] == before and torch.equal(again, part)
    store.texts(backbone, ["blue", "black"], ctx)  # one unseen text: the list is encoded
    assert toy.CALLS["texts"] == before + 2


def test_out_of_memory_halves_the_batch(monkeypatch):
    calls = []

    class Flaky(ToyColourBackbone):
        def encode_images(self, pixels):
            calls.append(pixels.shape[0])
            if pixels.shape[0] > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            return super().encode_images(pixels)

    backbone = Flaky()
    backbone.load(torch.device("cpu"))
    out, chunk = encode_with_fallback(backbone, torch.rand(7, 3, 8, 8), RunContext(), 8)
    assert out.shape == (7, 8) and chunk == 2
    assert calls[:3] == [7, 4, 2]

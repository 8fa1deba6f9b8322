"""The image-feature cache key names the run's numerics (dtype, autocast) and decode path, and
keeps the key float32 caches were written under (issue 19: a --dtype bfloat16 run reused
float32 features and recorded dtype bfloat16)."""

from __future__ import annotations

import torch

from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.cache import ArtifactCache, content_key
from oodbench.data.sources import resolve_source
from oodbench.features import FeatureStore
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext
from tests import toy
from tests.toy import ToyColourBackbone, write_colour_images

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _images(tmp_path):
    write_colour_images(tmp_path / "imgs", "red", 4, 0)
    return resolve_source({"type": "imagefolder", "root": str(tmp_path / "imgs")}, "x", None)


def test_float32_keeps_the_existing_key_other_dtypes_get_their_own(tmp_path):
    images = _images(tmp_path)
    backbone = ToyColourBackbone()
    backbone.load(CPU)
    store = FeatureStore(ArtifactCache(tmp_path / "cache"))
    legacy = content_key("image-features/1", backbone.fingerprint(), images.fingerprint)
    assert store.image_key(backbone, images) == legacy
    assert store.image_key(backbone, images, RunContext(dtype=torch.float32)) == legacy
    keys = {(device.type, dtype): store.image_key(backbone, images,
                                                  RunContext(device=device, dtype=dtype))
            for device in (CPU, CUDA)
            for dtype in (torch.float32, torch.float16, torch.bfloat16)}
    assert keys[("cpu", torch.float32)] == keys[("cuda", torch.float32)] == legacy
    others = [k for (_, dtype), k in keys.items() if dtype != torch.float32]
    assert len(set(others)) == 4 and legacy not in others  # dtype x autocast on/off


def test_compute_part_names_dtype_and_autocast():
    from oodbench.features import compute_key_part

    assert compute_key_part(CPU, torch.float32) is None
    assert compute_key_part(CUDA, torch.float32) is None
    assert compute_key_part(CUDA, torch.bfloat16) == {"dtype": "bfloat16",
                                                      "autocast": "bfloat16"}
    assert compute_key_part(CPU, torch.float16) == {"dtype": "float16", "autocast": "none"}


def test_bfloat16_run_does_not_reuse_float32_features(tmp_path):
    images = _images(tmp_path)
    backbone = ToyColourBackbone()
    backbone.load(CPU)
    store = FeatureStore(ArtifactCache(tmp_path / "cache"))
    store.images(backbone, images, RunContext(batch_size=4))
    before = toy.CALLS["images"]
    store.images(backbone, images, RunContext(batch_size=4, dtype=torch.bfloat16))
    assert toy.CALLS["images"] - before == 4 and store.stats.cache_hits == 0
    store.images(backbone, images, RunContext(batch_size=4, dtype=torch.bfloat16))
    assert store.stats.cache_hits == 1  # the same dtype is reused


def test_gpu_decode_key_also_names_the_dtype(tmp_path, tiny_clip_config):
    images = _images(tmp_path)
    backbone = OpenCLIPBackbone(model=tiny_clip_config, pretrained="")
    backbone.load(CPU)
    store = FeatureStore(ArtifactCache(tmp_path / "cache"))
    keys = {(decode, dtype): store.image_key(
                backbone, images, RunContext(device=CUDA, dtype=dtype, decode=decode))
            for decode in ("cpu", "gpu") for dtype in (torch.float32, torch.float16)}
    assert len(set(keys.values())) == 4
    legacy = content_key("image-features/1", backbone.fingerprint(), images.fingerprint)
    assert keys[("cpu", torch.float32)] == legacy


def test_records_of_two_dtypes_each_encode_their_own_features(registry, colour_suite,
                                                              tmp_path):
    cache = tmp_path / "cache"
    first = run(RunRequest("mcm", str(colour_suite)), RunContext(cache_dir=cache), registry)
    second = run(RunRequest("mcm", str(colour_suite)),
                 RunContext(cache_dir=cache, dtype=torch.bfloat16), registry)
    assert first["cache"]["images_encoded"] > 0
    assert second["environment"]["dtype"] == "bfloat16"
    assert second["cache"]["feature_cache_hits"] == 0
    assert second["cache"]["images_encoded"] == first["cache"]["images_encoded"]

"""Methods whose published numbers used bilinear resizing get it on real suites, and say so.

MCM, NegLabel and EOE (and MCM's energy / max-logit / MSP) resize with torchvision's default
bilinear filter; open_clip's OpenAI CLIP transform is bicubic. On a real suite the method's
filter is chosen for a backbone that has the ``interpolation`` parameter (unless the run sets
it), it enters the image-feature key (not the text key), and the record names it. Offline
suites and the mini backbone keep exactly their preprocessing.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.backbones.hf import HFCLIPBackbone
from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.cache import ArtifactCache
from oodbench.data.sources import resolve_source
from oodbench.data.suite import load_suite
from oodbench.errors import OODBenchError, ParameterError
from oodbench.features import FeatureStore
from oodbench.method import MethodSpec, backbone_params
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext
from oodbench_mini.model import MiniBackbone


def _ctx(tmp_path) -> RunContext:
    return RunContext(cache_dir=tmp_path / "cache", batch_size=16)


def _image() -> Image.Image:
    """A detailed, non-square image: bilinear and bicubic resizing differ on it."""
    rng = np.random.default_rng(0)
    return Image.fromarray((rng.random((70, 90, 3)) * 255).astype(np.uint8))


def test_mcm_on_a_real_suite_runs_bilinear_and_the_record_says_so(registry, colour_suite,
                                                                   tmp_path):
    record = run(RunRequest("mcm", str(colour_suite), backbone="tiny-clip"), _ctx(tmp_path),
                 registry)
    assert record["source"] == "real"
    section = record["backbone"]
    assert section["params"]["interpolation"] == "bilinear"
    assert section["preprocessing"]["interpolation"] == "bilinear"
    assert section["preprocessing"]["chosen_by"].startswith("method mcm")


def test_the_run_and_methods_without_a_reference_keep_the_backbone_default(
        registry, colour_suite, tmp_path):
    # an explicit backbone parameter wins over the method
    record = run(RunRequest("mcm", str(colour_suite), backbone="tiny-clip",
                            backbone_params={"interpolation": "bicubic"}),
                 _ctx(tmp_path), registry)
    assert record["backbone"]["preprocessing"] == {"interpolation": "bicubic",
                                                   "chosen_by": "backbone parameter"}
    # a composition with no published preprocessing keeps open_clip's own (bicubic)
    mine = tmp_path / "my-method.yaml"
    mine.write_text(textwrap.dedent("""
        name: my-mcm
        scorer: mcm
    """))
    record = run(RunRequest(str(mine), str(colour_suite), backbone="tiny-clip"),
                 _ctx(tmp_path), registry)
    assert record["backbone"]["params"]["interpolation"] == "model"
    assert record["backbone"]["preprocessing"] == {"interpolation": "bicubic",
                                                   "chosen_by": "backbone default"}
    assert "interpolation" not in record["method_spec"]


def test_a_method_file_can_declare_its_interpolation(tmp_path):
    spec = MethodSpec.from_dict({"name": "x", "scorer": "mcm", "interpolation": "bilinear"})
    assert spec.reference_interpolation == "bilinear"
    assert spec.to_dict()["interpolation"] == "bilinear"
    # "model" (or nothing) keeps the backbone's own preprocessing
    assert MethodSpec.from_dict({"name": "mcm", "scorer": "mcm",
                                 "interpolation": "model"}).reference_interpolation == ""
    assert MethodSpec.from_dict({"name": "x", "scorer": "mcm"}).reference_interpolation == ""
    with pytest.raises(OODBenchError, match="interpolation must be one of"):
        MethodSpec.from_dict({"name": "x", "scorer": "mcm", "interpolation": "nearest"})


def test_offline_suites_and_the_mini_backbone_are_unchanged(registry):
    spec = registry.get("method", "mcm").obj
    offline = load_suite(registry.get("suite", "offline-far").obj)
    # the mini backbone has no interpolation parameter: nothing is added, even on real data
    assert backbone_params(spec, offline, MiniBackbone, {}) == {}
    assert "interpolation" not in MiniBackbone.param_fields()
    assert MiniBackbone().interpolation_used() is None
    # an offline suite keeps the backbone's own preprocessing even on open_clip
    assert backbone_params(spec, offline, OpenCLIPBackbone, {}) == {}


def test_interpolation_enters_the_image_feature_key_not_the_text_key(tiny_clip_config,
                                                                     colour_suite, tmp_path):
    backbones = {}
    for mode in ("model", "bicubic", "bilinear"):
        backbone = OpenCLIPBackbone(model=tiny_clip_config, pretrained="", interpolation=mode)
        backbone.load(torch.device("cpu"))
        backbones[mode] = backbone
    assert backbones["model"].interpolation_used() == "bicubic"  # open_clip's own
    assert backbones["bilinear"].interpolation_used() == "bilinear"
    assert backbones["bilinear"].tensor_preprocess().interpolation == "bilinear"  # GPU decode
    suite = load_suite(colour_suite)
    images = resolve_source(suite.id_test, suite.id_name, suite.classes)
    store = FeatureStore(ArtifactCache(tmp_path / "cache"))
    keys = {mode: store.image_key(b, images) for mode, b in backbones.items()}
    assert keys["bilinear"] != keys["bicubic"]
    assert keys["bicubic"] == keys["model"]  # the same transform, the same features
    texts = {b.text_fingerprint() for b in backbones.values()}
    assert len(texts) == 1 and texts == {backbones["model"].fingerprint()}
    # and the pixels differ: the preprocessing really changed
    a = backbones["bicubic"].preprocess()(_image())
    b = backbones["bilinear"].preprocess()(_image())
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_bilinear_open_clip_matches_the_reference_transform(tiny_clip_config):
    """Resize(short side, bilinear) -> CenterCrop -> ToTensor -> CLIP mean/std, as MCM."""
    from torchvision import transforms as T

    backbone = OpenCLIPBackbone(model=tiny_clip_config, pretrained="", interpolation="bilinear")
    backbone.load(torch.device("cpu"))
    reference = T.Compose([
        T.Resize(32), T.CenterCrop(32), T.ToTensor(),
        T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    assert torch.allclose(backbone.preprocess()(_image()), reference(_image()), atol=1e-6)


def test_hf_backbone_interpolation(tiny_hf_clip):
    backbones = {}
    for mode in ("model", "bicubic", "bilinear"):
        backbone = HFCLIPBackbone(model_id=str(tiny_hf_clip), interpolation=mode)
        backbone.load(torch.device("cpu"))
        backbones[mode] = backbone
    assert backbones["model"].interpolation_used() == "bicubic"
    assert backbones["bilinear"].interpolation_used() == "bilinear"
    assert backbones["bilinear"].tensor_preprocess().interpolation == "bilinear"
    # the processor's own filter keeps the fingerprint (and existing caches) as before
    assert backbones["bicubic"].fingerprint() == backbones["model"].fingerprint()
    assert backbones["bilinear"].fingerprint() != backbones["model"].fingerprint()
    assert backbones["bilinear"].text_fingerprint() == backbones["model"].fingerprint()
    a = backbones["model"].preprocess()(_image())
    b = backbones["bilinear"].preprocess()(_image())
    assert not torch.allclose(a, b)


def test_unknown_interpolation_is_a_parameter_error():
    with pytest.raises(ParameterError, match="interpolation"):
        OpenCLIPBackbone.from_params({"interpolation": "nearest"})

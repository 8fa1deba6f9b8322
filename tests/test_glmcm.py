"""GL-MCM: the score by hand on a 2x2 patch grid, and through the runner with a toy backbone
whose patches are the mean colours of the image's four quadrants."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import oodbench
from oodbench.baselines.glmcm import GLMCMScorer, gl_mcm, local_mcm
from oodbench.errors import OODBenchError
from tests.toy import ToyColourBackbone

S = math.sqrt(0.5)


def test_gl_mcm_on_a_2x2_patch_grid_by_hand(monkeypatch):
    from oodbench.baselines import glmcm
    from oodbench.types import TextHead

    # three ID classes along the axes; four patches; the global feature between classes 1, 2
    classes = torch.eye(3)
    patches = torch.tensor([[[1.0, 0, 0], [S, S, 0], [0.6, 0, 0.8], [0, 0, -1]]])
    image = torch.tensor([[0.0, S, S]])
    # softmax over the classes of each patch, T = 1; the largest entry of each:
    per_patch = [math.e / (math.e + 2),                                  # cos (1, 0, 0)
                 math.exp(S) / (2 * math.exp(S) + 1),                    # (.71, .71, 0)
                 math.exp(0.8) / (math.exp(0.6) + 1 + math.exp(0.8)),    # (.6, 0, .8)
                 1 / (2 + math.exp(-1))]                                 # (0, 0, -1)
    local = max(per_patch)
    assert local == pytest.approx(0.5761168847658291)  # patch 0: e / (e + 2)
    assert local_mcm(patches, classes, 1.0).tolist() == pytest.approx([local])
    glob = math.exp(S) / (2 * math.exp(S) + 1)  # MCM of the global feature: (0, .71, .71)
    assert gl_mcm(np.array([glob]), np.array([local]), 0.5).tolist() == pytest.approx(
        [glob + 0.5 * local])
    # the scorer: global MCM + 0.5 x the local term of its patches
    monkeypatch.setattr(glmcm, "local_scores", lambda env, images, features, ids, t:
                        local_mcm(patches, ids, t).numpy())
    scorer = GLMCMScorer()
    assert (scorer.temperature, scorer.lambda_local) == (1.0, 0.5)
    got = scorer.score_set(None, None, None, image, TextHead(classes, list("abc")))
    assert got.tolist() == pytest.approx([glob + 0.5 * local])  # 0.40053... + 0.28806...
    # T divides the cosine before the softmax: at T = 0.5 patch 0 gives e^2 / (e^2 + 2)
    assert local_mcm(patches, classes, 0.5).tolist() == pytest.approx(
        [math.exp(2) / (math.exp(2) + 2)])


def test_gl_mcm_refuses_global_features_alone():
    from oodbench.types import TextHead

    with pytest.raises(OODBenchError, match="patch features"):
        GLMCMScorer().score(torch.eye(3), TextHead(torch.eye(3), list("abc")))
    with pytest.raises(ValueError, match="lambda_local"):
        GLMCMScorer(lambda_local=-1)


CALLS = {"patches": 0}


@dataclasses.dataclass
class ToyPatchBackbone(ToyColourBackbone):
    """The toy backbone plus 2x2 patches: each the embedding of one quadrant's mean colour."""

    name = "toy-patches"

    def fingerprint(self) -> str:
        return "toy-patches/1"

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        CALLS["patches"] += pixels.shape[0]
        h, w = pixels.shape[2:]
        quads = [pixels[:, :, i:i + h // 2, j:j + w // 2].mean(dim=(2, 3))
                 for i in (0, h // 2) for j in (0, w // 2)]
        embed = ToyColourBackbone.encode_images_differentiable
        return torch.stack([embed(self, q[:, :, None, None]) for q in quads], dim=1)


class _PatchPlugin:
    @oodbench.hookimpl
    def register_backbones(self, register):
        register(ToyPatchBackbone)


def test_gl_mcm_through_the_runner(registry, colour_suite, tmp_path):
    from oodbench.runner import RunRequest, run
    from oodbench.types import RunContext

    registry.add_plugin(_PatchPlugin(), "patches")
    ctx = RunContext(cache_dir=tmp_path / "cache")

    def go(method: str, **params: str) -> dict:
        return run(RunRequest(method, str(colour_suite), backbone="toy-patches", params=params),
                   ctx, registry)

    CALLS["patches"] = 0
    record = go("gl-mcm")
    # every readable image's patches once (the corrupt far image has no row): 60 + 30 + 25
    assert CALLS["patches"] == 115
    assert record["params"]["gl-mcm"]["lambda_local"] == 0.5
    assert record["backbone"]["name"] == "toy-patches"
    entries = list((tmp_path / "cache" / "local-mcm").rglob("*.json"))
    assert len(entries) == 3  # ID + two OOD sets: one small entry each
    # λ applies after the cache: another λ encodes no patch; λ = 0 is MCM exactly
    only_global = go("gl-mcm", lambda_local="0")
    assert CALLS["patches"] == 115
    assert only_global["metrics"] == go("mcm")["metrics"]
    # the local term is a max softmax over 3 classes (>= 1/3): every score rises by >= 1/6
    low, high = (record["curves"]["grey"]["edges"][i] for i in (0, -1))
    low0, high0 = (only_global["curves"]["grey"]["edges"][i] for i in (0, -1))
    assert low >= low0 + 1 / 6 - 1e-5 and high >= high0 + 1 / 6 - 1e-5
    # another temperature changes the local term: encoded again
    go("gl-mcm", temperature="0.5")
    assert CALLS["patches"] == 230


def test_gl_mcm_on_a_backbone_without_patches_is_one_line(registry, colour_suite, tmp_path):
    from oodbench.runner import RunRequest, run
    from oodbench.types import RunContext

    with pytest.raises(OODBenchError, match="does not provide") as info:
        run(RunRequest("gl-mcm", str(colour_suite)), RunContext(cache_dir=tmp_path), registry)
    assert "\n" not in str(info.value)

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from PIL import Image

import oodbench
from oodbench.generative import ImageDescriber, ImageGenerator
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext
from oodbench_mmood.labels import farthest_point_sample, mix_labels

CALLS = {"describe": 0, "render": 0, "images_seen": []}


@dataclasses.dataclass
class FakeDescriber(ImageDescriber):
    name = "fake-mllm"

    def describe(self, images, prompts):
        return ["- x"] * len(images)

    def context(self, images, subjects):
        return ["table"] * len(images)

    def propose(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[list[str]]:
        CALLS["describe"] += len(images)
        CALLS["images_seen"] += [np.asarray(im).mean(axis=(0, 1)).round().tolist()
                                 for im in images]
        out = []
        for prompt in prompts:
            if "and this image" in prompt:  # near: EOE's near prompt with the image
                out.append(["yellow", "red wine", "magenta"])
            else:  # far: elaborate on a generated image
                out.append(["grey", "cyan", "orange", "purple"])
        return out


@dataclasses.dataclass
class FakeGenerator(ImageGenerator):
    name = "fake-diffusion"

    def text_to_image(self, prompts, seeds):
        CALLS["render"] += len(prompts)
        return [Image.new("RGB", (16, 16), (128, 128, 128)) for _ in prompts]


class FakePlugin:
    @oodbench.hookimpl
    def register_image_describers(self, register):
        register(FakeDescriber)

    @oodbench.hookimpl
    def register_image_generators(self, register):
        register(FakeGenerator)


@pytest.fixture
def mm_registry(registry):
    from oodbench_mmood import plugin

    registry.add_plugin(plugin, "mmood", "oodbench-mmood")
    registry.add_plugin(FakePlugin(), "fakes")
    return registry


def _request(suite, **params):
    base = {"describer": "fake-mllm", "image_generator": "fake-diffusion", "llm": "knowledge",
            "generations": 1}
    return RunRequest("mmood", str(suite), params={**base, **params})


def test_near_branch_sees_only_train_images(mm_registry, colour_suite, tmp_path):
    CALLS.update(describe=0, images_seen=[])
    ctx = RunContext(cache_dir=tmp_path / "cache")
    record = run(_request(colour_suite, task="near", images_per_class=2), ctx, mm_registry)
    assert CALLS["describe"] == 6  # 2 train images x 3 classes
    train_dir = colour_suite.parent / "data" / "train"
    from oodbench.data.sources import resolve_source

    train = resolve_source({"type": "imagefolder", "root": str(train_dir)}, "t", None)
    train_means = {tuple(np.asarray(Image.open(k).convert("RGB")).mean(axis=(0, 1)).round())
                   for k in train.keys}
    assert {tuple(m) for m in CALLS["images_seen"]} <= train_means
    # "red wine" shares "red" with an ID class: EOE's near filter drops it
    assert record["labels"]["count"] == 2 and record["labels"]["meta"]["near_images"] == 6


def test_far_branch_budget_and_cache_reuse(mm_registry, colour_suite, tmp_path):
    pytest.importorskip("oodbench.labels.wordnet").wordnet_dir()
    ctx = RunContext(cache_dir=tmp_path / "cache")
    CALLS.update(describe=0, render=0)
    first = run(_request(colour_suite, task="far", budget_per_class=2, max_budget=4), ctx,
                mm_registry)
    meta = first["labels"]["meta"]
    assert meta["budget_requested"] == 6 and meta["budget"] == 4
    assert first["labels"]["count"] <= 4
    calls = dict(CALLS)
    assert calls["render"] > 0 and calls["describe"] > 0
    for _ in range(2):  # the second and third runs reuse every artefact
        run(_request(colour_suite, task="far", budget_per_class=2, max_budget=4), ctx,
            mm_registry)
    assert CALLS["render"] == calls["render"] and CALLS["describe"] == calls["describe"]


def test_mix_is_half_and_half():
    rng = np.random.default_rng(0)
    mixed = mix_labels([f"n{i}" for i in range(10)], [f"f{i}" for i in range(4)], 0.5, rng)
    assert sum(x.startswith("n") for x in mixed) == 4
    assert sum(x.startswith("f") for x in mixed) == 4
    assert mix_labels([], ["a"], 0.5, rng) == ["a"]


def test_farthest_point_sample_spreads_out():
    feats = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [-1.0, 0.0]]), dim=1)
    assert farthest_point_sample(feats, 2) == [0, 3]
    assert farthest_point_sample(feats, 10) == [0, 1, 2, 3]

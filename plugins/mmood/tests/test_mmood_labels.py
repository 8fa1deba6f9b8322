from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import oodbench
from oodbench.cache import ArtifactCache
from oodbench.generative import ImageDescriber, ImageGenerator, TextGenerator
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext
from oodbench_mmood.labels import MMOODLabels, farthest_point_sample, mix_labels

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


@dataclasses.dataclass
class ScriptedLLM(TextGenerator):
    """A text LLM for the broad categories and the far sketch, answering from a script."""

    name = "scripted-llm"

    def generate(self, prompts: Sequence[list[dict[str, str]]]) -> list[str]:
        return ["- colours\n- paints" if "Summarise them" in chat[-1]["content"]
                else "- magenta\n- grey\n- teal\n- olive" for chat in prompts]


def count_calls(monkeypatch: pytest.MonkeyPatch, cls: type, method: str) -> list[int]:
    """Wrap ``cls.method`` so that each call is counted (the count is ``counter[0]``)."""
    counter = [0]
    original: Callable[..., Any] = getattr(cls, method)

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, counted)
    return counter


class FakePlugin:
    @oodbench.hookimpl
    def register_text_generators(self, register):
        register(ScriptedLLM)

    @oodbench.hookimpl
    def register_image_describers(self, register):
        register(FakeDescriber)

    @oodbench.hookimpl
    def register_image_generators(self, register):
        register(FakeGenerator)


@pytest.fixture
def mm_registry(registry):
    from oodbench_eoe import plugin as eoe_plugin
    from oodbench_mmood import plugin

    registry.add_plugin(eoe_plugin, "eoe", "oodbench-eoe")
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


def test_budget_cap_and_third_run_calls_no_model(mm_registry, colour_suite, tmp_path,
                                                 monkeypatch):
    """Both branches (task unknown) with an LLM; runs 2 and 3 call no LLM, MLLM or diffusion."""
    calls = {"llm": count_calls(monkeypatch, ScriptedLLM, "generate"),
             **{f"mllm.{m}": count_calls(monkeypatch, FakeDescriber, m)
                for m in ("describe", "context", "propose")},
             "diffusion": count_calls(monkeypatch, FakeGenerator, "text_to_image")}
    ctx = RunContext(cache_dir=tmp_path / "cache")
    request = _request(colour_suite, task="unknown", llm="scripted-llm", budget_per_class=2,
                       max_budget=4)
    first = run(request, ctx, mm_registry)
    meta = first["labels"]["meta"]
    assert meta["budget_requested"] == 6 and meta["budget"] == 4
    assert 0 < meta["far_kept"] <= 4 and meta["near_images"] == 3
    made = {k: c[0] for k, c in calls.items()}
    assert made["llm"] > 0 and made["mllm.propose"] > 0 and made["diffusion"] > 0
    for _ in range(2):  # the second and third runs reuse every artefact
        again = run(request, ctx, mm_registry)
        assert again["labels"]["count"] == first["labels"]["count"]
    assert {k: c[0] for k, c in calls.items()} == made  # zero calls since the first run


def test_new_diffusion_weights_do_not_reuse_an_old_far_bank(mm_registry, colour_suite,
                                                            tmp_path, monkeypatch):
    """The bank's key holds the identities (weights) of the models its branches use."""
    renders = count_calls(monkeypatch, FakeGenerator, "text_to_image")
    ctx = RunContext(cache_dir=tmp_path / "cache")
    request = _request(colour_suite, task="far", llm="scripted-llm", budget_per_class=2)
    run(request, ctx, mm_registry)
    made = renders[0]
    run(request, ctx, mm_registry)
    assert renders[0] == made  # same weights: the bank is reused
    monkeypatch.setattr(FakeGenerator, "identity", lambda self: "fake-diffusion:sha256=new")
    run(request, ctx, mm_registry)
    assert renders[0] > made  # new weights: rendered and labelled again


class Interrupted(RuntimeError):
    pass


@dataclasses.dataclass
class FlakyGenerator(ImageGenerator):
    """Deterministic images per (prompt, seed), in batches; can stop after some images."""

    name = "flaky-diffusion"
    batch_size: int = 2

    def __post_init__(self) -> None:  # not parameters: the identity (image folder) is shared
        self.made: list[str] = []
        self.fail_after: int | None = None
        self.loaded_on: torch.device | None = None

    @property
    def loaded(self) -> bool:
        return self.loaded_on is not None

    def load(self, device: torch.device) -> None:
        self.loaded_on = device

    def text_to_image(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        if self.fail_after is not None and len(self.made) >= self.fail_after:
            raise Interrupted("killed mid-synthesis")
        self.made += prompts
        return [Image.new("RGB", (8, 8), (s % 256, len(p), 7)) for p, s in
                zip(prompts, seeds, strict=True)]


def _rendered(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_interrupted_render_resumes_with_only_the_missing_images(tmp_path):
    labels, seeds = [f"thing {i}" for i in range(5)], [11, 12, 13, 14, 15]
    prompts = [f"a photo of a {label}." for label in labels]
    mm = MMOODLabels()
    env = SimpleNamespace(cache=ArtifactCache(tmp_path / "a"), device=torch.device("cpu"))
    flaky = FlakyGenerator()
    flaky.fail_after = 2  # the first batch (2 images) is written, the second call dies
    with pytest.raises(Interrupted):
        mm.render(env, flaky, labels, seeds)
    kept = _rendered(tmp_path / "a")
    assert sorted(n.rsplit(".", 1)[1] for n in kept) == ["json", "json", "png", "png"]
    resumed = FlakyGenerator()
    images = mm.render(env, resumed, labels, seeds)
    assert resumed.made == prompts[2:]  # only the missing images
    fresh = FlakyGenerator()
    expected = mm.render(SimpleNamespace(cache=ArtifactCache(tmp_path / "b"), device="cpu"),
                         fresh, labels, seeds)
    assert fresh.made == prompts
    assert _rendered(tmp_path / "a") == _rendered(tmp_path / "b")  # the same final set
    assert [np.asarray(i).tolist() for i in images] == [np.asarray(i).tolist() for i in expected]
    manifest = json.loads(next((tmp_path / "a").rglob("*.json")).read_text())
    assert manifest["prompt"] in prompts and manifest["seed"] in seeds
    assert manifest["params"] == {"batch_size": 2} and manifest["generator"].startswith("flaky")
    assert resumed.loaded_on == env.device  # loaded onto the run's device, not its own pick
    cached = FlakyGenerator()
    assert mm.render(env, cached, labels, seeds) and not cached.made
    assert not cached.loaded  # nothing to render: the model is never loaded


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


def test_branch_generators_alone_with_the_synonym_filter(mm_registry, colour_suite, tmp_path):
    """mmood-near / mmood-far: one branch each, usable by another method's file."""
    from oodbench.labels import wordnet
    from oodbench.labels.bank import bank_path
    from oodbench.types import LabelBank

    try:
        wordnet.wordnet_dir()
    except Exception as exc:
        pytest.skip(f"WordNet not installed ({exc})")
    registered = {r for p in mm_registry.plugins for r in p.registered}
    assert {("label_generator", "mmood-near"), ("label_generator", "mmood-far")} <= registered
    ctx = RunContext(cache_dir=tmp_path / "cache")

    def run_with(name: str, **params: Any) -> dict:
        method = tmp_path / f"{name}.yaml"
        method.write_text(f"name: my-{name}\nlabel_generator: {{name: {name}, params: "
                          f"{json.dumps({'generations': 1, **params})}}}\nscorer: eoe\n")
        return run(RunRequest(str(method), str(colour_suite)), ctx, mm_registry)["labels"]

    near = run_with("mmood-near", describer="fake-mllm", synonym_filter="wordnet")
    # the fake MLLM says yellow, red wine, magenta: EOE's near filter drops "red wine", and
    # WordNet 3.0 files magenta under red (a hyponym of an ID class): one label left
    assert near["generator"] == "mmood-near" and near["meta"]["task"] == "near"
    assert near["count"] == 1 and near["meta"]["synonyms_dropped_wordnet"] == 1
    bank = LabelBank.load(bank_path(ArtifactCache(ctx.cache_dir), near["meta"]["key"]))
    assert bank.labels == ["yellow"] and bank.meta["synonym_drops"] == {"wordnet": ["magenta"]}
    # describer_params reach the describer: the vocabulary describer answers top_k concepts
    vocab = run_with("mmood-near", describer="vocabulary", describer_params={"top_k": 1})
    assert vocab["meta"]["near_raw"] == 3  # 1 train image x 3 classes x top_k 1
    far = run_with("mmood-far", describer="fake-mllm", image_generator="fake-diffusion",
                   llm="knowledge", budget_per_class=2)
    whole = run(_request(colour_suite, task="far", budget_per_class=2), ctx, mm_registry)
    assert far["meta"]["task"] == "far" and "synonyms_dropped_wordnet" not in far["meta"]
    assert far["count"] == whole["labels"]["count"] > 0  # the same branch as mmood-labels'

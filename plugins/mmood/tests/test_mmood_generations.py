"""EOE and MM-OOD over independent generations: the seed reaches every stochastic model, equal
label banks are scored once, re-runs reuse every artefact, evaluation images never reach the
MLLM."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Sequence

import pytest
import torch
from PIL import Image

import oodbench
from oodbench.data.sources import resolve_source
from oodbench.generative import ImageDescriber, ImageGenerator, TextGenerator
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext
from oodbench_eoe.score import eoe_score

POOLS = (["yellow", "cyan"], ["magenta", "grey"], ["orange", "purple"])
LOG: dict[str, list] = {"llm": [], "describe": [], "render": []}


@dataclasses.dataclass
class ScriptedLLM(TextGenerator):
    """Sampling (temperature > 0): answers drawn by the seed. Greedy: answers follow the first
    ID name in the prompt, as a greedy model's answer follows its prompt."""

    name = "scripted-llm"
    temperature: float = 0.0

    def uses_seed(self) -> bool:
        return self.temperature > 0

    def generate(self, prompts: Sequence[list[dict[str, str]]]) -> list[str]:
        out = []
        for chat in prompts:
            text = chat[-1]["content"]
            LOG["llm"].append((self.seed, text))
            if "Summarise them" in text:
                out.append("- colours")
                continue
            if self.uses_seed():
                pool = POOLS[self.seed % 3]
            else:
                first = re.search(r"\[(\w+)\]", chat[0]["content"]).group(1)
                pool = POOLS[["red", "green", "blue"].index(first)]
            more = "more" in text
            out.append("\n".join(f"- {'light ' if more else ''}{c}" for c in pool))
        return out


def _digest(image: Image.Image) -> str:
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


@dataclasses.dataclass
class RecordingDescriber(ImageDescriber):
    """Remembers every image it is shown; answers like an MLLM would, deterministically."""

    name = "recording-mllm"

    def describe(self, images, prompts):
        return ["- x"] * len(images)

    def context(self, images, subjects):
        return ["table"] * len(images)

    def propose(self, images, prompts):
        LOG["describe"] += [_digest(im) for im in images]
        out = []
        for image, prompt in zip(images, prompts, strict=True):
            shade = int(image.convert("RGB").getpixel((0, 0))[0])
            if "and this image" in prompt:
                out.append(["yellow", "magenta", f"shade {shade}"])
            else:
                out.append(["cyan", "orange", f"tone {shade}"])
        return out


@dataclasses.dataclass
class SeedShadeGenerator(ImageGenerator):
    """A solid image whose shade comes from its seed: other seeds, other images."""

    name = "seed-shade"

    def text_to_image(self, prompts, seeds):
        LOG["render"] += list(seeds)
        return [Image.new("RGB", (16, 16), (s % 200, 40, 40)) for s in seeds]


class Fakes:
    @oodbench.hookimpl
    def register_text_generators(self, register):
        register(ScriptedLLM)

    @oodbench.hookimpl
    def register_image_describers(self, register):
        register(RecordingDescriber)

    @oodbench.hookimpl
    def register_image_generators(self, register):
        register(SeedShadeGenerator)


@pytest.fixture
def mm_registry(registry):
    from oodbench_eoe import plugin as eoe_plugin
    from oodbench_mmood import plugin

    registry.add_plugin(eoe_plugin, "eoe", "oodbench-eoe")
    registry.add_plugin(plugin, "mmood", "oodbench-mmood")
    registry.add_plugin(Fakes(), "fakes")
    for calls in LOG.values():
        calls.clear()
    return registry


def _eoe(suite, **params):
    base = {"envisioner": "scripted-llm", "far_labels": "4", "per_turn": "2"}
    return RunRequest("eoe", str(suite), params={**base, **params})


def test_eoe_generations_pass_the_seed_to_a_sampling_llm(mm_registry, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache", seed=10)
    record = run(_eoe(colour_suite, llm_params='{"temperature": 0.7}'), ctx, mm_registry)
    assert sorted({seed for seed, _ in LOG["llm"]}) == [10, 11, 12]
    # a sampling LLM keeps EOE's prompt order: the same prompts, other draws
    far_prompts = [text for _, text in LOG["llm"] if text.startswith("An image dataset has 3")]
    assert len(far_prompts) == 3 and len(set(far_prompts)) == 1
    block = record["generations"]
    assert block["seeds"] == [10, 11, 12] and block["distinct_label_sets"] == 3
    calls = len(LOG["llm"])
    for _ in range(2):  # the second and third runs reuse every label bank: no LLM call
        again = run(_eoe(colour_suite, llm_params='{"temperature": 0.7}'), ctx, mm_registry)
        assert again["metrics"] == record["metrics"]
    assert len(LOG["llm"]) == calls


def test_greedy_llm_generations_differ_by_prompt_order(mm_registry, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache")
    record = run(_eoe(colour_suite), ctx, mm_registry)  # prompt_order=auto: seeded order
    far_prompts = [text for _, text in LOG["llm"] if text.startswith("An image dataset has 3")]
    assert len(far_prompts) == 3 and len(set(far_prompts)) > 1
    assert record["generations"]["distinct_label_sets"] > 1
    assert record["params"]["envision"]["prompt_order"] == "auto"


def test_greedy_llm_with_fixed_order_is_asked_once(mm_registry, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache")
    record = run(_eoe(colour_suite, prompt_order="fixed"), ctx, mm_registry)
    # greedy + fixed prompts: one cached bank for all three generations, scored once
    assert len(LOG["llm"]) == 3  # broad + 2 far turns, once
    assert record["generations"]["distinct_label_sets"] == 1
    assert all(v == 0.0 for s in record["generations"]["std"]["metrics"].values()
               for v in s.values())


def _images_of(suite_dir, *parts) -> set[str]:
    source = resolve_source({"type": "imagefolder", "root": str(suite_dir.joinpath(*parts))},
                            "x", None)
    digests = set()
    for key in source.keys:
        try:
            with Image.open(key) as image:
                digests.add(_digest(image))
        except OSError:  # the suite's deliberately broken file
            continue
    return digests


def test_mmood_generations_never_show_evaluation_images(mm_registry, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache")
    params = {"describer": "recording-mllm", "image_generator": "seed-shade", "llm": "knowledge",
              "task": "unknown", "budget_per_class": "2", "images_per_class": "1"}
    record = run(RunRequest("mmood", str(colour_suite), params=params), ctx, mm_registry)
    block = record["generations"]
    assert block["n"] == 3 and block["seeds"] == [0, 1, 2]
    assert block["distinct_label_sets"] > 1  # other train images and other renders per seed
    data = colour_suite.parent / "data"
    evaluation = _images_of(data, "id") | _images_of(data, "near") | _images_of(data, "far")
    train = _images_of(data, "train")
    shown = set(LOG["describe"])
    assert shown and not shown & evaluation
    near_shown = shown - {_digest(Image.new("RGB", (16, 16), (s % 200, 40, 40)))
                          for s in LOG["render"]}
    assert near_shown and near_shown <= train
    assert len(set(LOG["render"])) == len(LOG["render"])  # every render has its own seed
    counts = (len(LOG["describe"]), len(LOG["render"]))
    for _ in range(2):  # re-runs reuse banks, renders and answers
        run(RunRequest("mmood", str(colour_suite), params=params), ctx, mm_registry)
    assert (len(LOG["describe"]), len(LOG["render"])) == counts


def test_eoe_score_by_hand_two_ids_two_outliers_t_half():
    # image at 0°; ID labels at 0° and 90°; outliers at 60° and 180°; T = 0.5, β = 0.25
    angles = {"id": [0.0, 90.0], "out": [60.0, 180.0]}
    vec = lambda d: [math.cos(math.radians(d)), math.sin(math.radians(d))]  # noqa: E731
    image = torch.tensor([[1.0, 0.0]])
    id_f = torch.tensor([vec(a) for a in angles["id"]])
    out_f = torch.tensor([vec(a) for a in angles["out"]])
    cos = [1.0, 0.0, 0.5, -1.0]
    z = sum(math.exp(c / 0.5) for c in cos)
    expected = math.exp(2) / z - 0.25 * math.exp(1) / z
    assert eoe_score(image, id_f, out_f, 0.5, 0.25)[0] == pytest.approx(expected, abs=1e-6)

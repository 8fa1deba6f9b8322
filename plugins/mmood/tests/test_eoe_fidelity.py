"""EOE / MM-OOD as the official EOE code does them (tmlr-group/EOE, utils/detection_util.py,
utils/prompt_pool.py) and the MM-OOD paper's budget: one template for ID and outlier names,
the cosine pre-filter where EOE applies it, EOE's fixed class type per fine-grained dataset,
L = 12 x K without a default cap."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

import oodbench
from oodbench.cache import ArtifactCache
from oodbench.data.suite import load_suite
from oodbench.env import MethodEnv
from oodbench.features import FeatureStore
from oodbench.generative import ImageDescriber, ImageGenerator, TextGenerator
from oodbench.runner import RunRequest, run
from oodbench.testing import ToyColourBackbone
from oodbench.types import LabelBank, RunContext, TextHead
from oodbench_eoe.score import EOEScorer
from oodbench_mmood.labels import MMOODLabels

SUITES = Path(__file__).resolve().parents[3] / "oodbench" / "suites"


@dataclasses.dataclass
class TemplateToyBackbone(ToyColourBackbone):
    """The toy colour space plus a direction that tells "... {}." from "... {}" (no period)."""

    name = "toy-template"

    def fingerprint(self) -> str:
        return "toy-template/1"

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        out = super().encode_texts(texts).clone()
        for i, text in enumerate(texts):
            out[i, 4 if text.endswith(".") else 5] += 1.0
        return torch.nn.functional.normalize(out, dim=-1)


@dataclasses.dataclass
class Scripted(TextGenerator):
    """An LLM answering each EOE prompt family from a script (records the prompts it saw)."""

    name = "scripted-eoe"
    seen: list[str] = dataclasses.field(default_factory=list)

    def generate(self, prompts: Sequence[list[dict[str, str]]]) -> list[str]:
        out = []
        for chat in prompts:
            text = chat[-1]["content"]
            PROMPTS.append(text)
            if "Summarise them" in text:
                out.append("- colours\n- paints")
            elif "Given the image category" in text:  # "redwood" embeds as red in the toy
                out.append("- redwood\n- yellow\n- grey")
            elif "kinds of" in text:
                out.append("- cyan\n- magenta")
            else:
                out.append("- magenta\n- grey\n- teal")
        return out


PROMPTS: list[str] = []


@dataclasses.dataclass
class Describer(ImageDescriber):
    name = "fake-mllm-eoe"

    def describe(self, images, prompts):
        return ["- x"] * len(images)

    def context(self, images, subjects):
        return ["table"] * len(images)

    def propose(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[list[str]]:
        return [["redwood", "yellow", "grey"] if "and this image" in p else ["grey", "cyan"]
                for p in prompts]


@dataclasses.dataclass
class Renderer(ImageGenerator):
    name = "fake-diffusion-eoe"

    def text_to_image(self, prompts, seeds):
        return [Image.new("RGB", (16, 16), (128, 128, 128)) for _ in prompts]


class Fakes:
    @oodbench.hookimpl
    def register_text_generators(self, register):
        register(Scripted)

    @oodbench.hookimpl
    def register_image_describers(self, register):
        register(Describer)

    @oodbench.hookimpl
    def register_image_generators(self, register):
        register(Renderer)


@pytest.fixture
def reg(registry):
    from oodbench_eoe import plugin as eoe_plugin
    from oodbench_mmood import plugin

    registry.add_plugin(eoe_plugin, "eoe", "oodbench-eoe")
    registry.add_plugin(plugin, "mmood", "oodbench-mmood")
    registry.add_plugin(Fakes(), "fakes")
    return registry


def variant(colour_suite: Path, tmp_path: Path, *, task: str, id_name: str = "rgb",
            class_type: str | None = None) -> Path:
    """The colour suite with another task, ID set name and (optionally) a class_type."""
    text = colour_suite.read_text().replace("task: far", f"task: {task}")
    text = text.replace("name: rgb", f"name: {id_name}")
    if class_type is not None:
        text = text.replace("task:", f"class_type: {class_type}\ntask:", 1)
    path = tmp_path / f"variant-{task}-{id_name}-{class_type}" / "colours.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


# -- 1. one template for the ID names and the outlier names ---------------------------------
def _template_env(registry, colour_suite: Path, tmp_path: Path) -> MethodEnv:
    backbone = TemplateToyBackbone()
    backbone.load(torch.device("cpu"))
    return MethodEnv(RunContext(cache_dir=tmp_path), backbone, "toy-template",
                     load_suite(colour_suite), FeatureStore(ArtifactCache(tmp_path)), registry)


def test_scorer_embeds_id_and_outlier_names_with_the_same_template(registry, colour_suite,
                                                                    tmp_path):
    env = _template_env(registry, colour_suite, tmp_path)
    assert env.suite.prompts == ("a photo of a {}.",)  # the suite's prompt has a period
    # the head as the runner builds it: ID names with the suite's prompts, the outlier names
    # with the bank's template (envision's "a photo of a {}")
    bank = LabelBank(labels=["red", "cyan"], generator="envision", templates=["a photo of a {}"])
    head = TextHead(env.id_text_features(), list(env.suite.classes),
                    extra_features=env.label_features(bank), extra_labels=list(bank.labels))
    assert float(head.id_features[0] @ head.extra_features[0]) < 0.99  # "red" != "red"

    prepared = EOEScorer().prepare(env, head)
    eoe = env.id_text_features(["a photo of a {}"])  # EOE's exact string, both sides
    assert torch.allclose(prepared.id_features, eoe)
    assert torch.allclose(prepared.extra_features, env.label_features(bank))
    assert float(prepared.id_features[0] @ prepared.extra_features[0]) == pytest.approx(1.0)
    assert env.notes["eoe"] == {"templates": ["a photo of a {}"]}

    suite = EOEScorer(template="suite").prepare(env, head)  # the suite's prompts on both
    assert torch.allclose(suite.id_features, head.id_features)
    assert float(suite.id_features[0] @ suite.extra_features[0]) == pytest.approx(1.0)
    assert EOEScorer(template="").prepare(env, head) is head  # as the runner built it
    with pytest.raises(ValueError, match="placeholder"):
        EOEScorer(template="a photo")


def test_eoe_run_scores_with_eoe_template(reg, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache")
    record = run(RunRequest("eoe", str(colour_suite),
                            params={"envisioner": "scripted-eoe", "generations": 1}), ctx, reg)
    assert record["notes"]["eoe"] == {"templates": ["a photo of a {}"]}
    assert record["params"]["eoe"]["template"] == "a photo of a {}"
    assert record["params"]["envision"]["template"] == "a photo of a {}"


# -- 2. EOE's cosine pre-filter -------------------------------------------------------------
def test_cosine_prefilter_only_where_eoe_applies_it(reg, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache")
    params = {"envisioner": "scripted-eoe", "generations": 1}
    imagenet20 = variant(colour_suite, tmp_path, task="near", id_name="imagenet-20")
    meta = run(RunRequest("eoe", str(imagenet20), params=params), ctx, reg)["labels"]["meta"]
    # near + ImageNet-20: "redwood" (cosine 1 with "red") dropped; yellow and grey kept
    assert meta["cosine_filter_applied"] is True and meta["cosine_dropped"] == 1
    assert meta["cosine_threshold"] == 0.85 and meta["cosine_filter"] == "auto"
    assert meta["kept"] == 2
    from oodbench.labels.bank import bank_path

    bank = LabelBank.load(bank_path(ArtifactCache(ctx.cache_dir), meta["key"]))
    assert bank.meta["cosine_drops"] == ["redwood"] and "redwood" not in bank.labels
    assert bank.params["cosine_threshold"] == 0.85

    other = variant(colour_suite, tmp_path, task="near")  # near, but not ImageNet-20
    meta = run(RunRequest("eoe", str(other), params=params), ctx, reg)["labels"]["meta"]
    assert meta["cosine_filter_applied"] is False and meta["kept"] == 3
    never = run(RunRequest("eoe", str(imagenet20), params={**params, "cosine_filter": "never"}),
                ctx, reg)["labels"]["meta"]
    assert never["cosine_filter_applied"] is False and never["kept"] == 3
    always = run(RunRequest("eoe", str(other), params={**params, "cosine_filter": "always"}),
                 ctx, reg)["labels"]["meta"]
    assert always["cosine_filter_applied"] is True and always["kept"] == 2


def test_mmood_applies_the_cosine_prefilter_to_its_final_labels(reg, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache")
    params = {"describer": "fake-mllm-eoe", "image_generator": "fake-diffusion-eoe",
              "generations": 1}
    imagenet20 = variant(colour_suite, tmp_path, task="near", id_name="imagenet-20")
    record = run(RunRequest("mmood", str(imagenet20), params=params), ctx, reg)
    meta = record["labels"]["meta"]
    assert meta["near_kept"] == 3 and meta["cosine_dropped"] == 1
    assert record["labels"]["count"] == 2
    plain = run(RunRequest("mmood", str(colour_suite.parent / colour_suite.name),
                           params={**params, "task": "near"}), ctx, reg)
    assert plain["labels"]["meta"]["cosine_filter_applied"] is False
    assert plain["labels"]["count"] == 3


# -- 3. EOE's fixed class type per fine-grained dataset -------------------------------------
def test_fine_grained_prompt_names_the_suites_class_type(reg, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache")
    params = {"envisioner": "scripted-eoe", "generations": 1, "far_labels": 2}
    typed = variant(colour_suite, tmp_path, task="fine-grained", class_type="paint colour")
    PROMPTS.clear()
    meta = run(RunRequest("eoe", str(typed), params=params), ctx, reg)["labels"]["meta"]
    assert meta["fine_kind"] == "paint colour" and meta["fine_kind_source"] == "suite"
    assert not any("Summarise them" in p for p in PROMPTS)  # no broad-category request
    assert any("3 different kinds of paint colour" in p for p in PROMPTS)
    # a suite without a class type keeps the old default: the first broad category
    untyped = variant(colour_suite, tmp_path, task="fine-grained")
    meta = run(RunRequest("eoe", str(untyped), params=params), ctx, reg)["labels"]["meta"]
    assert meta["fine_kind"] == "colours" and meta["fine_kind_source"] == "broad-category"
    # the parameter wins over the suite
    meta = run(RunRequest("eoe", str(typed), params={**params, "fine_kind": "hue"}), ctx,
               reg)["labels"]["meta"]
    assert meta["fine_kind"] == "hue" and meta["fine_kind_source"] == "parameter"


def test_real_fine_grained_suites_carry_eoes_class_types():
    # EOE utils/prompt_pool.py: cub100_ID bird, car98_ID car, food50_ID food,
    # pet18_ID "pet(including dogs and cats)"
    expected = {"cub200": "bird", "cars196": "car", "food101": "food",
                "pets37": "pet(including dogs and cats)"}
    assert {name: load_suite(SUITES / f"{name}.yaml").class_type
            for name in expected} == expected
    assert load_suite(SUITES / "offline-fine.yaml").class_type == ""  # offline: unchanged


# -- 4. MM-OOD's budget L = 12 x K, no default cap ------------------------------------------
def test_mmood_budget_is_twelve_per_class_without_a_default_cap(reg, colour_suite, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache")
    record = run(RunRequest("mmood", str(colour_suite), params={
        "llm": "scripted-eoe", "describer": "fake-mllm-eoe",
        "image_generator": "fake-diffusion-eoe", "generations": 1, "budget_per_class": 400,
        "max_rounds": 1, "representatives": 2}), ctx, reg)
    meta = record["labels"]["meta"]
    assert meta["budget_requested"] == 1200 and meta["budget"] == 1200  # K = 3, > 1000
    assert meta["max_budget"] == 0
    assert MMOODLabels().budget(1000) == (12000, 12000)  # ImageNet-1K: the paper's 12,000
    assert MMOODLabels(max_budget=500).budget(1000) == (12000, 500)  # an explicit cap

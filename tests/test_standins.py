"""Paper settings on real data, explicit stand-ins and the substitution record."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest

import oodbench
from oodbench.errors import OfflineError
from oodbench.interfaces import Scorer
from oodbench.method import ComponentRef, MethodSpec
from oodbench.runner import RunRequest, run
from oodbench.standins import substitution_tag, with_paper_settings
from oodbench.types import RunContext

LOADABLE = {"stand-in", "paper-model"}


@dataclasses.dataclass
class ModelScorer(Scorer):
    """MCM-like; its ``model`` default is a stand-in for the paper's."""

    name = "model-scorer"
    paper_settings: ClassVar[dict[str, Any]] = {"model": "paper-model", "n": 50}
    model: str = "stand-in"
    n: int = 4

    def preflight(self, env):
        if self.model not in LOADABLE:
            raise OfflineError(f"model-scorer needs {self.model!r}; or -p model=stand-in.")

    def score(self, image_features, head):
        return (image_features @ head.id_features.T).max(dim=1).values.numpy()


class _Plugin:
    @oodbench.hookimpl
    def register_scorers(self, register):
        register(ModelScorer)

    @oodbench.hookimpl
    def register_methods(self, register):
        register(MethodSpec(name="model-method", scorer=ComponentRef("model-scorer")))


@pytest.fixture
def reg(registry):
    registry.add_plugin(_Plugin(), "standin-test")
    return registry


def test_real_data_gets_the_paper_settings(reg, colour_suite, tmp_path):
    record = run(RunRequest("model-method", str(colour_suite)),
                 RunContext(cache_dir=tmp_path / "c"), reg)
    assert record["source"] == "real"
    assert record["params"]["model-scorer"]["model"] == "paper-model"
    assert record["params"]["model-scorer"]["n"] == 50
    assert record["substitutions"] == {}


def test_a_stand_in_on_real_data_is_explicit_and_recorded(reg, colour_suite, tmp_path):
    record = run(RunRequest("model-method", str(colour_suite), params={"model": "stand-in"}),
                 RunContext(cache_dir=tmp_path / "c"), reg)
    assert record["params"]["model-scorer"] == {"role": "scorer", "model": "stand-in", "n": 50}
    assert record["substitutions"] == {"model-scorer.model": "stand-in"}
    assert substitution_tag(record["substitutions"]) == "stand-in"


def test_an_unloadable_paper_model_stops_before_any_work(reg, colour_suite, tmp_path, monkeypatch):
    monkeypatch.setattr(ModelScorer, "paper_settings", {"model": "huge-model"})
    with pytest.raises(OfflineError, match="huge-model"):
        run(RunRequest("model-method", str(colour_suite)),
            RunContext(cache_dir=tmp_path / "c"), reg)
    assert not list((tmp_path / "c").rglob("*.npy"))  # no image was encoded


def test_offline_suites_keep_the_component_defaults():
    assert with_paper_settings(ModelScorer, {}, real=False) == {}
    assert with_paper_settings(ModelScorer, {"n": 3}, real=True) == {"model": "paper-model",
                                                                      "n": 3}
    assert substitution_tag({"s.inpainter": "mini-diffusion", "s.per_class": 4}) == \
        "mini-diffusion, per_class=4"


def test_eoe_on_real_data_without_an_llm_stops_in_one_line(registry, colour_suite, tmp_path,
                                                            monkeypatch):
    """EOE's paper setting is an LLM: with none loadable here the run names the model, how to
    give a local copy, and the parameter that selects the offline stand-in."""
    from oodbench.errors import OfflineError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    plugin = pytest.importorskip("oodbench_eoe.plugin")  # registers the eoe method
    registry.add_plugin(plugin, "eoe", "oodbench-eoe")
    with pytest.raises(OfflineError) as info:
        run(RunRequest("eoe", str(colour_suite)), RunContext(cache_dir=tmp_path / "c"),
            registry)
    message = str(info.value)
    assert "\n" not in message and "Qwen/Qwen2.5-1.5B-Instruct" in message
    assert "model=PATH" in message and "-p label_generator.envisioner=knowledge" in message
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("*.npy"))

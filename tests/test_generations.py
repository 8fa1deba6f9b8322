"""Independent generations (``generations=N``): runner, record arithmetic, validation, board."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import ClassVar

import numpy as np
import pytest
import torch

import oodbench
from oodbench.interfaces import LabelGenerator, Scorer
from oodbench.leaderboard import Entry, render_markdown
from oodbench.results import generation_summary, mean_std, record_problems, validate_record
from oodbench.runner import RunRequest, run
from oodbench.types import LabelBank, RunContext, TextHead
from tests import toy
from tests.test_leaderboard import fake_record

# -- the arithmetic, by hand ---------------------------------------------------------------------


def test_mean_std_by_hand():
    mean, std = mean_std([0.80, 0.90, 1.00])
    assert mean == pytest.approx(0.90) and std == pytest.approx(0.10)  # sample std (ddof 1)
    mean, std = mean_std([0.2, 0.5])
    assert mean == pytest.approx(0.35) and std == pytest.approx(math.sqrt(0.045))
    assert mean_std([0.7]) == (0.7, 0.0)
    # identical values come back exactly (no float sum / n drift): a deterministic method's
    # N generations reproduce its single-run record bit for bit
    value = 0.1 + 0.2
    assert mean_std([value] * 3) == (value, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def _set(group: str, auroc: float, fpr95: float) -> dict:
    return {"group": group, "auroc": auroc, "fpr95": fpr95, "aupr_in": auroc,
            "aupr_out": auroc, "n_id": 10, "n_ood": 5, "fpr_convention": "paper"}


def test_generation_summary_by_hand():
    per_set = [{"a": _set("near", 0.90, 0.40), "b": _set("far", 0.99, 0.05)},
               {"a": _set("near", 0.80, 0.60), "b": _set("far", 0.97, 0.15)},
               {"a": _set("near", 0.90, 0.40), "b": _set("far", 0.99, 0.05)}]
    groups = [{"near": {"auroc": s["a"]["auroc"], "fpr95": s["a"]["fpr95"], "sets": 1},
               "far": {"auroc": s["b"]["auroc"], "fpr95": s["b"]["fpr95"], "sets": 1}}
              for s in per_set]
    means, group_means, accuracy, block = generation_summary(
        per_set, groups, [0.9, 0.6, 0.9], [4, 5, 6], [0, 1, 0], [12, 15, 12])
    # a: AUROC 0.90, 0.80, 0.90 -> mean 0.8667, sample std sqrt(((1/30)^2*2+(2/30)^2)/2)
    assert means["a"]["auroc"] == pytest.approx(2.6 / 3)
    assert block["std"]["metrics"]["a"]["auroc"] == pytest.approx(math.sqrt(1 / 300))
    assert means["a"]["fpr95"] == pytest.approx(1.4 / 3)
    assert block["std"]["metrics"]["a"]["fpr95"] == pytest.approx(math.sqrt(0.04 / 3))
    assert means["b"]["fpr95"] == pytest.approx(0.25 / 3)
    assert block["std"]["metrics"]["b"]["fpr95"] == pytest.approx(math.sqrt(0.01 / 3))
    assert means["a"]["group"] == "near" and means["a"]["n_ood"] == 5
    assert group_means["near"]["auroc"] == pytest.approx(2.6 / 3)
    assert group_means["near"]["sets"] == 1
    assert block["std"]["groups"]["far"]["auroc"] == pytest.approx(
        np.std([0.99, 0.97, 0.99], ddof=1))
    assert accuracy == pytest.approx(0.8) and block["std"]["id_accuracy"] == pytest.approx(
        np.std([0.9, 0.6, 0.9], ddof=1))
    assert block["n"] == 3 and block["seeds"] == [4, 5, 6]
    assert block["distinct_label_sets"] == 2 and block["label_sets"] == [0, 1, 0]
    assert [g["labels"] for g in block["per_generation"]] == [12, 15, 12]
    assert block["per_generation"][1]["groups"]["near"] == {"auroc": 0.80, "fpr95": 0.60}
    assert block["per_generation"][1]["metrics"]["b"]["fpr95"] == 0.15


# -- the runner on the toy colour suite ---------------------------------------------------------
SEEN: dict[str, list] = {"seeds": [], "score_calls": 0}
BANKS = (["yellow", "cyan"], ["magenta", "grey"], ["orange", "purple"])


@dataclasses.dataclass
class SeededColours(LabelGenerator):
    """Outlier colour names drawn from the run seed (``fixed``: the same for every seed)."""

    name = "seeded-colours"
    generations: int = 3
    fixed: bool = False

    def generate(self, env) -> LabelBank:
        SEEN["seeds"].append(env.ctx.seed)
        labels = BANKS[0] if self.fixed else BANKS[env.ctx.seed % len(BANKS)]
        return LabelBank(labels=list(labels), generator=self.name, params=self.params())


@dataclasses.dataclass
class CountingScorer(Scorer):
    """max ID cosine − max outlier cosine, counting how often it scores."""

    name = "counting"
    needs_extra_labels: ClassVar[bool] = True

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        SEEN["score_calls"] += 1
        id_max = (image_features @ head.id_features.T).max(dim=1).values
        out_max = (image_features @ head.extra_features.T).max(dim=1).values
        return (id_max - out_max).numpy()


class GenerationsPlugin:
    @oodbench.hookimpl
    def register_label_generators(self, register):
        register(SeededColours)

    @oodbench.hookimpl
    def register_scorers(self, register):
        register(CountingScorer)

    @oodbench.hookimpl
    def register_methods(self, register):
        register(oodbench.MethodSpec(name="seeded", label_generator=oodbench.ComponentRef(
            "seeded-colours"), scorer=oodbench.ComponentRef("counting")))


@pytest.fixture
def gen_registry(registry):
    registry.add_plugin(GenerationsPlugin(), "generations-test")
    SEEN.update(seeds=[], score_calls=0)
    return registry


def _run(registry, suite, tmp_path, seed=0, **params):
    ctx = RunContext(cache_dir=tmp_path / "cache", batch_size=16, seed=seed)
    return run(RunRequest("seeded", str(suite), params={k: str(v) for k, v in params.items()}),
               ctx, registry)


def test_each_generation_gets_its_own_seed_and_the_record_is_their_mean(gen_registry,
                                                                         colour_suite, tmp_path):
    before = toy.CALLS["images"]
    record = _run(gen_registry, colour_suite, tmp_path, seed=5)
    assert SEEN["seeds"] == [5, 6, 7]  # run seed + g
    block = record["generations"]
    assert block["n"] == 3 and block["seeds"] == [5, 6, 7]
    assert block["distinct_label_sets"] == 3 and block["label_sets"] == [0, 1, 2]
    assert SEEN["score_calls"] == 3 * 3  # ID + 2 OOD sets, per distinct bank
    # the images were encoded once, not once per generation
    assert toy.CALLS["images"] - before == record["counts"]["id"] + sum(
        record["counts"]["ood"].values())
    per = block["per_generation"]
    for name, entry in record["metrics"].items():
        values = [g["metrics"][name]["auroc"] for g in per]
        assert len(set(values)) > 1 or name == "grey"  # the banks really differ
        assert entry["auroc"] == pytest.approx(np.mean(values))
        assert block["std"]["metrics"][name]["auroc"] == pytest.approx(np.std(values, ddof=1))
    near = [g["groups"]["near"]["fpr95"] for g in per]
    assert record["groups"]["near"]["fpr95"] == pytest.approx(np.mean(near))
    assert block["std"]["groups"]["near"]["fpr95"] == pytest.approx(np.std(near, ddof=1))
    assert [g["seed"] for g in per] == [5, 6, 7]
    validate_record(record, "the run")
    # the leaderboard shows mean ± std for it
    markdown = render_markdown(_board(record))
    assert " ± " in markdown and "3 generations (seeds 5–7, 3 distinct label sets)" in markdown


def test_identical_banks_are_scored_once(gen_registry, colour_suite, tmp_path):
    single = _run(gen_registry, colour_suite, tmp_path, fixed=True, generations=1)
    assert "generations" not in single  # one generation: the record is unchanged
    SEEN.update(seeds=[], score_calls=0)
    record = _run(gen_registry, colour_suite, tmp_path, fixed=True)
    assert SEEN["seeds"] == [0, 1, 2]  # every generation asks its generator ...
    assert SEEN["score_calls"] == 3  # ... but the same bank is scored once (ID + 2 OOD sets)
    block = record["generations"]
    assert block["distinct_label_sets"] == 1 and block["label_sets"] == [0, 0, 0]
    assert record["metrics"] == single["metrics"] and record["groups"] == single["groups"]
    assert all(v == 0.0 for s in block["std"]["metrics"].values() for v in s.values())


def test_generations_must_be_positive(gen_registry, colour_suite, tmp_path):
    from oodbench.errors import OODBenchError

    with pytest.raises(OODBenchError, match="generations"):
        _run(gen_registry, colour_suite, tmp_path, generations=0)


# -- validation and the leaderboard -------------------------------------------------------------
def _with_generations() -> dict:
    record = fake_record("eoe")
    per_set = [record["metrics"], {n: {**m, "auroc": m["auroc"] - 0.02}
                                   for n, m in record["metrics"].items()}]
    groups = [record["groups"], {g: {**m, "auroc": m["auroc"] - 0.02}
                                 for g, m in record["groups"].items()}]
    means, group_means, acc, block = generation_summary(per_set, groups, [0.8, 0.8], [0, 1],
                                                        [0, 1], [10, 11])
    return {**record, "metrics": means, "groups": group_means, "id_accuracy": acc,
            "generations": block}


def test_record_validation_checks_the_generations_block():
    good = _with_generations()
    validate_record(good, "good.json")
    cases = {
        "seeds": lambda b: b.update(seeds=[0, 0]),
        "distinct_label_sets": lambda b: b.update(distinct_label_sets=2, label_sets=[0, 0]),
        "per_generation": lambda b: b["per_generation"].pop(),
        "std.metrics": lambda b: b["std"]["metrics"].pop("birds"),
        "generations.n must be an integer": lambda b: b.update(n="3"),
    }
    for expected, corrupt in cases.items():
        bad = copy.deepcopy(good)
        corrupt(bad["generations"])
        problems = record_problems(bad)
        assert any(expected in p for p in problems), (expected, problems)
    bad = copy.deepcopy(good)
    bad["generations"]["per_generation"][0]["metrics"]["birds"]["auroc"] = 1.5
    assert any("per_generation[0]" in p for p in record_problems(bad))


def _board(*records: dict):
    from oodbench.leaderboard import Leaderboard, make_tables

    entries = [Entry(f"{r['method']}.json", r) for r in records]
    return Leaderboard(make_tables(entries), [], [])


def test_leaderboard_shows_mean_pm_std_only_for_generations():
    averaged, single = _with_generations(), fake_record("mcm")
    markdown = render_markdown(_board(averaged, single))
    rows = {line.split(" | ")[1]: line for line in markdown.splitlines()
            if line.startswith("| ") and " | mini | " in line}
    assert rows["eoe"].count(" ± ") == 2 * 4 + 1  # 2 sets + 2 group means, 2 metrics; ID acc
    assert "± 1.41" in rows["eoe"]  # AUROC 0.90 and 0.88: sample std 1.41 (in %)
    assert " ± " not in rows["mcm"]
    assert "2 generations (seeds 0–1, 2 distinct label sets)" in markdown
    # deterministic bytes
    assert markdown == render_markdown(_board(averaged, single))
    from oodbench.leaderboard import render_html

    html = render_html(_board(averaged, single))
    assert "89.00 ± 1.41" in html and html == render_html(_board(averaged, single))

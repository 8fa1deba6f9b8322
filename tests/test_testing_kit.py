"""oodbench.testing: check_plugin passes a good plugin, lists every problem of broken ones; the
pytest plugin's fixtures work; importing oodbench does not import the kit."""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import random
import subprocess
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch

import oodbench
from oodbench import ComponentRef, FineTuner, LabelBank, LabelGenerator, MethodSpec, Scorer
from oodbench.testing import PluginCheckError, check_plugin, plugin_problems


@dataclasses.dataclass
class GoodScorer(Scorer):
    name = "good-score"
    description = "Highest ID cosine."
    scale: float = 1.0
    mode: Literal["max", "mean"] = "max"
    classes: list[str] = dataclasses.field(default_factory=lambda: ["a", "b"])

    def score(self, image_features, head):
        sims = image_features @ head.id_features.T * self.scale
        return (sims.max(dim=1).values if self.mode == "max" else sims.mean(dim=1)).numpy()


@dataclasses.dataclass
class GoodLabels(LabelGenerator):
    name = "good-labels"
    description = "Two seeded colour words."

    def generate(self, env):
        pool = ["cyan", "grey", "orange", "purple"]
        picked = env.rng(self.name).choice(len(pool), 2, replace=False)
        return LabelBank([pool[i] for i in picked], generator=self.name)


class GoodPlugin:
    @oodbench.hookimpl
    def register_scorers(self, register):
        register(GoodScorer)

    @oodbench.hookimpl
    def register_label_generators(self, register):
        register(GoodLabels)

    @oodbench.hookimpl
    def register_methods(self, register):
        register(MethodSpec("good", scorer=ComponentRef("good-score", {"mode": "mean"}),
                            label_generator=ComponentRef("good-labels")))


def test_a_good_plugin_passes():
    check_plugin(GoodPlugin(), installed=False)


# -- broken on purpose: each class below is wrong in one way ------------------------------------
@dataclasses.dataclass
class WrongShape(Scorer):
    name = "wrong-shape"
    description = "Returns one score per ID class."

    def score(self, image_features, head):
        return (image_features @ head.id_features.T).numpy()


@dataclasses.dataclass
class NanScores(Scorer):
    name = "nan-scores"
    description = "Divides by zero."

    def score(self, image_features, head):
        return np.full(len(image_features), np.nan)


@dataclasses.dataclass
class BadParams(Scorer):
    name = "Bad Params"
    description = "Parameters the CLI cannot set."
    folder: Path = Path("x")
    k: int = "three"  # type: ignore[assignment]

    def score(self, image_features, head):
        return image_features[:, 0].numpy()


class NotADataclass(Scorer):
    name = "not-a-dataclass"
    description = "Forgot the decorator."
    k: int = 3

    def score(self, image_features, head):
        return image_features[:, 0].numpy()


@dataclasses.dataclass
class NoDefault(Scorer):
    name = "no-default"
    description = "A parameter without a default."
    k: int

    def score(self, image_features, head):
        return image_features[:, 0].numpy()


@dataclasses.dataclass
class ListNotBank(LabelGenerator):
    name = "list-not-bank"
    description = "Returns a list."

    def generate(self, env):
        return ["cyan"]


@dataclasses.dataclass
class EmptyBank(LabelGenerator):
    name = "empty-bank"
    description = "Returns no labels."

    def generate(self, env):
        return LabelBank([], generator=self.name)


@dataclasses.dataclass
class Unseeded(LabelGenerator):
    name = "unseeded"
    description = "Draws from the global random module."

    def generate(self, env):
        words = [f"word{i}" for i in range(1000)]
        return LabelBank(random.sample(words, 5), generator=self.name)


@dataclasses.dataclass
class ReturnsNone(FineTuner):
    name = "returns-none"
    description = "Forgets to return the head."

    def finetune(self, env, head, samples):
        head.replace(id_features=head.id_features * 2)


class BrokenPlugin:
    @oodbench.hookimpl
    def register_scorers(self, register):
        for cls in (WrongShape, NanScores, BadParams, NotADataclass, NoDefault):
            register(cls)

    @oodbench.hookimpl
    def register_label_generators(self, register):
        for cls in (ListNotBank, EmptyBank, Unseeded):
            register(cls)

    @oodbench.hookimpl
    def register_finetuners(self, register):
        register(ReturnsNone)

    @oodbench.hookimpl
    def register_methods(self, register):
        register(MethodSpec("typo", scorer=ComponentRef("wrong-shap")))
        register(MethodSpec("no-labels", scorer=ComponentRef("neglabel")))
        register(MethodSpec("bad-param", scorer=ComponentRef("nan-scores", {"k": 1})))

    def register_synthesizers(self, register):  # not decorated: silently ignored otherwise
        raise AssertionError("never called")


EXPECTED = {  # component -> what the message must say about it
    "scorer 'wrong-shape'": "score returned shape (22, 3) for 22 images",
    "scorer 'nan-scores'": "22 non-finite score(s) of 22",
    "scorer 'Bad Params'": "the name is not well-formed",
    "scorer 'not-a-dataclass'": "is not a dataclass",
    "scorer 'no-default'": "parameter 'k' has no default",
    "label generator 'list-not-bank'": "generate returned list, not a LabelBank",
    "label generator 'empty-bank'": "empty label bank",
    "label generator 'unseeded'": "two runs with seed 0 gave different banks",
    "finetuner 'returns-none'": "finetune returned NoneType, not a TextHead",
    "method 'typo'": "Did you mean 'wrong-shape'",
    "method 'no-labels'": "needs extra labels",
    "method 'bad-param'": "has no parameter 'k'",
    "plugin": "register_synthesizers is not a hook implementation",
}


def test_a_broken_plugin_gets_one_error_listing_every_problem():
    with pytest.raises(PluginCheckError) as caught:
        check_plugin(BrokenPlugin(), installed=False)
    message = str(caught.value)
    assert message.startswith("plugin 'BrokenPlugin' failed ")
    lines = message.splitlines()[1:]
    for component, what in EXPECTED.items():
        hits = [line for line in lines if line.startswith(f"  - {component}: ")]
        assert any(what in line for line in hits), (component, what, hits)
    assert all("; fix: " in line for line in lines)  # every problem names its fix
    assert "parameter 'folder' has type" in message and "--param cannot produce" in message
    assert "parameter 'k': " in message  # the str default of an int
    assert len(caught.value.problems) == len(lines)


def test_a_collision_and_a_misspelt_hook_are_problems():
    class Colliding:
        @oodbench.hookimpl
        def register_scorers(self, register):
            register(dataclasses.make_dataclass("Mcm", [], bases=(WrongShape,),
                                                namespace={"name": "mcm"}))

    _, problems = plugin_problems(Colliding(), installed=False)
    assert "'mcm' is already registered" in problems[0].what

    class Misspelt:
        @oodbench.hookimpl
        def register_scorer(self, register):
            register(GoodScorer)

    _, problems = plugin_problems(Misspelt(), installed=False)
    assert any("register_scorer" in p.what for p in problems)


def test_skip_needs_a_reason_and_a_registered_name():
    check_plugin(BrokenOnlyAtRunTime(), skip={"wrong-shape": "needs a GPU model"},
                 installed=False)
    with pytest.raises(PluginCheckError, match="gives no reason"):
        check_plugin(BrokenOnlyAtRunTime(), skip={"wrong-shape": " "}, installed=False)
    with pytest.raises(PluginCheckError, match="skip names 'nope'"):
        check_plugin(BrokenOnlyAtRunTime(), skip={"wrong-shape": "why", "nope": "why"},
                     installed=False)


class BrokenOnlyAtRunTime:
    @oodbench.hookimpl
    def register_scorers(self, register):
        register(WrongShape)


def test_the_probe_env_is_the_toy_world(tmp_path):
    from oodbench.testing import toy_env

    env = toy_env(tmp_path)
    assert env.backbone.name == "toy-colour" and list(env.suite.classes) == ["red", "green", "blue"]
    assert len(env.encode(env.id_train_images())) == 9
    assert torch.allclose(env.id_text_features().norm(dim=1), torch.ones(3))


def test_fixtures_of_the_pytest_plugin(oodbench_registry, toy_suite, toy_env):
    from oodbench.runner import RunRequest, run
    from oodbench.types import RunContext

    assert "toy-colour" in oodbench_registry.names("backbone")
    oodbench_registry.add_plugin(GoodPlugin(), "good")
    ctx = RunContext(cache_dir=toy_suite.parent / "cache")
    record = run(RunRequest("good", str(toy_suite)), ctx, oodbench_registry)
    assert record["counts"]["id"] == 12 and record["groups"]["far"]["auroc"] > 0.5
    assert toy_env.suite.name == "colours"


def test_the_pytest_plugin_is_registered_and_import_oodbench_stays_light():
    eps = {ep.name: ep.value for ep in md.entry_points(group="pytest11")}
    assert eps.get("oodbench") == "oodbench.testing.pytest_plugin"
    code = ("import sys, oodbench, oodbench.testing; "
            "assert 'oodbench.testing.check' not in sys.modules; "
            "assert 'torch' not in sys.modules; import oodbench.testing.pytest_plugin; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-c", "import sys, oodbench; "
                          "print(any(m.startswith('oodbench.testing') for m in sys.modules))"],
                         check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"

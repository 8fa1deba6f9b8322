"""The plugin module: hook implementations and nothing else."""

from __future__ import annotations

from pathlib import Path

import oodbench
from oodbench import ComponentRef, MethodSpec
from oodbench.hookspecs import Register
from oodbench_example.finetuner import RecentreFineTuner
from oodbench_example.labels import RandomWords
from oodbench_example.scorer import Top2MarginScorer


@oodbench.hookimpl
def register_label_generators(register: Register) -> None:
    register(RandomWords)


@oodbench.hookimpl
def register_finetuners(register: Register) -> None:
    register(RecentreFineTuner)


@oodbench.hookimpl
def register_scorers(register: Register) -> None:
    register(Top2MarginScorer)


@oodbench.hookimpl
def register_methods(register: Register) -> None:
    register(MethodSpec(name="top2-margin", scorer=ComponentRef("top2-margin"),
                        description=Top2MarginScorer.description))
    # a method file composing this plugin's components with a built-in scorer
    register(MethodSpec.from_file(Path(__file__).with_name("words-neglabel.yaml")))

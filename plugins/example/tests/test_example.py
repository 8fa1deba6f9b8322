"""The example plugin: its components do what the README's plugin guide says, it passes
check_plugin, and the guide's code is the plugin's code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from oodbench.runner import RunRequest, run
from oodbench.testing import check_plugin
from oodbench.types import RunContext
from oodbench_example import plugin
from oodbench_example.finetuner import RecentreFineTuner
from oodbench_example.labels import WORDS, RandomWords

EXAMPLE = Path(__file__).resolve().parents[1]
README = EXAMPLE.parents[1] / "README.md"


def test_the_example_passes_check_plugin():
    check_plugin(plugin)


def test_random_words_are_seeded_and_leave_out_id_classes(toy_env):
    bank = RandomWords(count=5).generate(toy_env)
    assert len(bank.labels) == 5 and set(bank.labels) <= set(WORDS)
    assert RandomWords(count=5).generate(toy_env).labels == bank.labels
    toy_env.ctx.seed = 1
    assert RandomWords(count=5).generate(toy_env).labels != bank.labels
    piano = dataclasses.replace(toy_env, suite=dataclasses.replace(toy_env.suite,
                                                                  classes=("piano", "red")))
    assert "piano" not in RandomWords(count=len(WORDS)).generate(piano).labels


def test_recentre_moves_both_modalities_to_their_id_means(toy_env):
    head = RecentreFineTuner().finetune(toy_env, _head(toy_env), None)
    train = toy_env.encode(toy_env.id_train_images()).features
    assert head.adapt(train).mean(dim=0).norm() < 0.2 * train.mean(dim=0).norm()
    assert head.id_features.sum(dim=0).norm() < 1e-5  # three unit vectors, mean removed
    with pytest.raises(Exception, match="must be the first fine-tuner"):
        RecentreFineTuner().finetune(toy_env, head, None)


def _head(env):
    from oodbench.types import TextHead

    return TextHead(env.id_text_features(), list(env.suite.classes))


def test_the_yaml_method_runs_end_to_end(oodbench_registry, toy_suite):
    oodbench_registry.add_plugin(plugin, "example")
    ctx = RunContext(cache_dir=toy_suite.parent / "cache")
    record = run(RunRequest("words-neglabel", str(toy_suite)), ctx, oodbench_registry)
    assert record["labels"]["count"] == 16 and record["labels"]["generator"] == "random-words"
    assert record["method_spec"]["finetuners"] == [{"name": "recentre", "params": {}}]
    assert record["params"]["neglabel"]["ngroup"] == 1
    assert 0.0 <= record["groups"]["far"]["auroc"] <= 1.0
    assert torch.isfinite(torch.tensor(record["id_accuracy"]))


# -- the README's plugin guide quotes these files ------------------------------------------------
QUOTED = re.compile(r"```(?:python|yaml|toml)\n# (plugins/example/\S+)\n(.*?)```", re.S)


def _guide() -> str:
    text = README.read_text()
    start = text.index("## Writing a plugin")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_every_code_block_of_the_guide_is_the_example_s_code():
    blocks = QUOTED.findall(_guide())
    assert blocks, "the guide quotes no file of plugins/example"
    for path, code in blocks:
        source = (EXAMPLE.parents[1] / path).read_text()
        assert code in source, f"the README's block of {path} is not an excerpt of that file"


def test_the_guide_quotes_every_file_of_the_example():
    quoted = {path for path, _ in QUOTED.findall(_guide())}
    files = [p for p in (*EXAMPLE.glob("oodbench_example/*"), EXAMPLE / "pyproject.toml",
                         EXAMPLE / "tests" / "test_example.py")
             if p.suffix in (".py", ".yaml", ".toml") and p.name != "__init__.py"]
    missing = {str(p.relative_to(EXAMPLE.parents[1])) for p in files} - quoted
    assert not missing, f"the guide does not show {sorted(missing)}"

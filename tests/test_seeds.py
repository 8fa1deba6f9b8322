"""How many seeds a run averages and what each generation's components see (oodbench.seeds)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from oodbench.contracts import LabelGenerator, Scorer
from oodbench.errors import OODBenchError
from oodbench.runner import RunRequest, run
from oodbench.seeds import OFFLINE_SEEDS, generation_count, is_stochastic, seeds_moved_on
from oodbench.types import RunContext


@dataclass
class Seeded(Scorer):
    name = "seeded"
    seed: int = 42

    def score(self, feats, head):  # pragma: no cover - never scored here
        raise AssertionError


@dataclass
class Drawing(LabelGenerator):
    name = "drawing"
    generations: int = 1

    def generate(self, env):  # pragma: no cover
        raise AssertionError


@dataclass
class Plain(Scorer):
    name = "plain"
    temperature: float = 1.0

    def score(self, feats, head):  # pragma: no cover
        raise AssertionError


def test_a_seed_parameter_or_a_generations_parameter_makes_a_method_stochastic() -> None:
    assert is_stochastic([("scorer", Seeded())])
    assert is_stochastic([("label_generator", Drawing()), ("scorer", Plain())])
    assert not is_stochastic([("scorer", Plain())])


def test_the_count_follows_its_precedence() -> None:
    seeded, plain = [("scorer", Seeded())], [("scorer", Plain())]
    assert OFFLINE_SEEDS == 3
    assert generation_count(seeded, None, {}, offline=True) == 3   # offline default
    assert generation_count(seeded, None, {}, offline=False) == 1  # real suites: one seed
    assert generation_count(plain, None, {}, offline=True) == 1    # deterministic method
    assert generation_count(seeded, 5, {}, offline=True) == 5      # --seeds wins
    drawing = [("label_generator", Drawing(generations=1)), ("scorer", Plain())]
    # an explicit -p generations=1 is kept, even offline
    assert generation_count(drawing, None, {"drawing.generations": "1"}, offline=True) == 1
    assert generation_count([("label_generator", Drawing(generations=5))], None, {},
                            offline=True) == 5
    with pytest.raises(OODBenchError, match="--seeds must be at least 1"):
        generation_count(seeded, 0, {}, offline=True)


def test_seeds_move_on_per_generation_and_come_back() -> None:
    scorer, plain = Seeded(seed=7), Plain()
    with seeds_moved_on([("scorer", scorer), ("x", plain)], 0):
        assert scorer.seed == 7
    with seeds_moved_on([("scorer", scorer), ("x", plain)], 2):
        assert scorer.seed == 9
    assert scorer.seed == 7
    with pytest.raises(RuntimeError), seeds_moved_on([("scorer", scorer)], 1):
        raise RuntimeError  # restored even when a generation fails
    assert scorer.seed == 7


def test_seeds_gives_one_generation_per_seed(registry, colour_suite, tmp_path) -> None:
    ctx = RunContext(cache_dir=tmp_path / "cache", batch_size=16, seed=4)
    record = run(RunRequest("mcm", str(colour_suite), seeds=2), ctx, registry)
    block = record["generations"]
    assert block["n"] == 2 and block["seeds"] == [4, 5]
    # mcm draws nothing: both generations score the same, so the spread is zero
    first, second = (g["metrics"] for g in block["per_generation"])
    assert first == second
    assert all(v["auroc"] == 0 for v in block["std"]["metrics"].values())


@pytest.mark.offline_data
def test_seeds_option_averages_and_names_the_record(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from oodbench.cli import app

    result = CliRunner().invoke(app, ["run", "-m", "mcm", "-s", "offline-far", "--seeds", "2",
                                      "-o", str(tmp_path), "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("mcm--offline-far--mini--p*.json")  # never the default record
    record = json.loads(path.read_text())
    assert record["overrides"] == {"--seeds": "2"} and record["generations"]["n"] == 2

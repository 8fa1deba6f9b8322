"""End to end through the CLI on a real offline suite: the mini backbone, the real catalogue.

One shared cache per module, so the suite's images are encoded once. NegLabel runs with a small
candidate pool here; scripts/leaderboard_ci.py runs every method (plugins included) at full
size on every offline suite in CI. The plugins' own offline runs are tested in plugins/*/tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oodbench.cli import app
from oodbench.paths import data_dir

pytestmark = pytest.mark.offline_data
runner = CliRunner()

# method -> extra CLI parameters that keep the run small (same code paths)
METHODS = {
    "mcm": [],
    "msp": [],
    "maxlogit": [],
    "energy": [],
    "neglabel": ["-p", "max_per_pool=1500"],
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    if not (data_dir() / "offline" / "catalog.jsonl").exists():
        pytest.skip("offline catalogue not fetched (oodbench data fetch-offline)")
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("method", list(METHODS))
def test_method_runs_on_offline_far(method: str, cache: Path, tmp_path: Path) -> None:
    if method == "neglabel":
        pytest.importorskip("oodbench.labels.wordnet").wordnet_dir()
    result = runner.invoke(app, ["run", "-m", method, "-s", "offline-far", "-o", str(tmp_path),
                                 "--device", "cpu", "--cache-dir", str(cache), "--workers", "0",
                                 *METHODS[method]])
    assert result.exit_code == 0, result.output
    # -p overrides add --p<hash> to the file name
    (path,) = tmp_path.glob(f"{method}--offline-far--mini*.json")
    record = json.loads(path.read_text())
    assert record["source"] == "offline" and record["backbone"]["name"] == "mini"
    assert record["id_accuracy"] > 0.8  # the mini backbone's zero-shot head works
    assert record["groups"]["far"]["auroc"] > 0.85, record["groups"]  # meaningful, not chance
    assert set(record["metrics"]) == {"animals", "food", "vehicles", "objects", "buildings"}

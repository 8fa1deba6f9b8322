"""GL-MCM and CSP end to end through the CLI on the offline-far suite (mini backbone).

CSP runs with a small candidate pool here (same code paths); scripts/leaderboard_ci.py runs
both at full size on every offline suite.
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


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    if not (data_dir() / "offline" / "catalog.jsonl").exists():
        pytest.skip("offline catalogue not fetched (oodbench data fetch-offline)")
    return tmp_path_factory.mktemp("cache")


def _run(method: str, cache: Path, out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["run", "-m", method, "-s", "offline-far", "-o", str(out),
                                 "--device", "cpu", "--cache-dir", str(cache), "--workers", "0",
                                 *extra])
    assert result.exit_code == 0, result.output
    (path,) = out.glob(f"{method}--offline-far--mini*.json")
    record = json.loads(path.read_text())
    assert record["source"] == "offline" and record["backbone"]["name"] == "mini"
    assert set(record["metrics"]) == {"animals", "food", "vehicles", "objects", "buildings"}
    assert record["id_accuracy"] > 0.8
    return record


def test_gl_mcm_on_offline_far(cache: Path, tmp_path: Path) -> None:
    record = _run("gl-mcm", cache, tmp_path / "a")
    assert record["groups"]["far"]["auroc"] > 0.9, record["groups"]
    assert record["params"]["gl-mcm"] == {"role": "scorer", "temperature": 1.0,
                                          "lambda_local": 0.5}
    # the local term is cached per image set, a few bytes per image (not the patch grid)
    entries = list((cache / "local-mcm").rglob("*.json"))
    images = record["counts"]["id"] + sum(record["counts"]["ood"].values())
    assert len(entries) == 1 + len(record["metrics"])  # ID + each OOD set
    assert sum(e.stat().st_size for e in entries) < 32 * images
    again = _run("gl-mcm", cache, tmp_path / "b")
    assert again["metrics"] == record["metrics"]
    assert len(list((cache / "local-mcm").rglob("*.json"))) == len(entries)  # reused, none added


def test_csp_on_offline_far(cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("oodbench.labels.wordnet").wordnet_dir()
    record = _run("csp", cache, tmp_path, "-p", "max_per_pool=1500")
    assert record["groups"]["far"]["auroc"] > 0.85, record["groups"]
    # 15 % of each pool of 1,500 candidates
    assert record["labels"]["count"] == 225 + 225
    assert record["labels"]["generator"] == "csp-mining"

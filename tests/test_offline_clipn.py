"""CLIPN-ATD and OLE (CLIPN) end to end through the CLI on offline-far with mini-clipn, and the
one-line error when a suite's own backbone has no "no" tower.

OLE runs with a short outlier word list and the k-means option here (same code paths);
scripts/leaderboard_ci.py runs both at full size on every offline suite with mini-clipn.
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
WORDS = "tiger,banana,truck,sparrow,pizza,bicycle,whale,carrot,airplane,horse"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    if not (data_dir() / "offline" / "catalog.jsonl").exists():
        pytest.skip("offline catalogue not fetched (oodbench data fetch-offline)")
    return tmp_path_factory.mktemp("cache")


def _run(method: str, cache: Path, out: Path, *extra: str) -> dict:
    # no --backbone: the method names mini-clipn for the suite's mini, and says so
    result = runner.invoke(app, ["run", "-m", method, "-s", "offline-far", "-o", str(out),
                                 "--device", "cpu", "--cache-dir", str(cache), "--workers", "0",
                                 *extra])
    assert result.exit_code == 0, result.output
    assert f"backbone: mini-clipn (method {method} runs on it in place of the suite's mini" \
        in " ".join(result.output.split())
    (path,) = out.glob(f"{method}--offline-far--mini-clipn*.json")
    record = json.loads(path.read_text())
    assert record["backbone"]["name"] == "mini-clipn"
    assert "no-tower-sha256=" in record["backbone"]["fingerprint"]
    assert set(record["metrics"]) == {"animals", "food", "vehicles", "objects", "buildings"}
    assert record["id_accuracy"] > 0.8  # the yes tower is the mini backbone's
    return record


def test_clipn_atd_and_ctw_on_offline_far(cache: Path, tmp_path: Path) -> None:
    atd = _run("clipn", cache, tmp_path / "atd")
    assert atd["notes"]["clipn"]["variant"] == "ATD" and atd["params"]["clipn"]["scale"] == 100.0
    assert atd["groups"]["far"]["auroc"] > 0.85, atd["groups"]
    # the "no" embeddings are cached beside the text features
    assert list((cache / "texts-no").rglob("*.npy"))
    ctw = _run("clipn", cache, tmp_path / "ctw", "-p", "clipn.variant=ctw")
    assert ctw["notes"]["clipn"]["variant"] == "CTW"
    assert ctw["metrics"] != atd["metrics"]


def test_ole_clipn_on_offline_far(cache: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OODBENCH_LOAD_PLUGINS", "mini,ole")
    record = _run("ole-clipn", cache, tmp_path, "-p", "ole-outliers.source=list",
                  "-p", f"ole-outliers.words={WORDS}", "-p", "covariance=kmeans",
                  "-p", "id_covariance=kmeans")
    assert record["notes"]["ole-clipn"]["variant"] == "OLE (CLIPN)"
    assert record["params"]["ole-clipn"]["scale"] == 50.0
    assert record["groups"]["far"]["auroc"] > 0.85, record["groups"]


def test_clipn_on_a_backbone_without_a_no_tower_names_the_clipn_backbones(cache: Path,
                                                                          tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "-m", "clipn", "-s", "offline-far", "-o",
                                 str(tmp_path), "--backbone", "mini", "--device", "cpu",
                                 "--cache-dir", str(cache)])
    assert result.exit_code != 0
    assert "--backbone mini-clipn" in result.output and "clipn-b16" in result.output
    assert not list(tmp_path.glob("*.json"))

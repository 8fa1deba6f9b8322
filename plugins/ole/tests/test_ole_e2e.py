"""`oodbench run --method ole` end to end on the toy colour suite, and the plugin's packaging."""

from __future__ import annotations

import importlib.metadata as md
import json

import pytest
from typer.testing import CliRunner

import oodbench.plugins as plugins_module
from oodbench.cli import app
from oodbench.plugins import Registry
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext

# the toy backbone knows colour names only; other words embed as grey
WORDS = "cyan,yellow,magenta,orange,purple,grey,stone,cloud,red"


def _args(suite, tmp_path, *extra: str) -> list[str]:
    return ["run", "-m", "ole", "-s", str(suite), "-o", str(tmp_path / "out"), "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache"), "--workers", "0",
            "-p", "ole-outliers.source=list", "-p", f"ole-outliers.words={WORDS}", *extra]


def test_cli_run_ole_end_to_end(ole_registry, ole_colour_suite, tmp_path, monkeypatch):
    monkeypatch.setattr(plugins_module, "_REGISTRY", ole_registry)
    result = CliRunner().invoke(app, _args(ole_colour_suite, tmp_path))
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "out").glob("ole--colours--toy-colour--p*.json")  # -p overrides
    record = json.loads(path.read_text())
    assert record["params"]["ole-prototypes"]["covariance"] == "full"
    assert record["params"]["ole"]["scale"] == 50.0
    assert record["labels"]["count"] == 8  # "red" is an ID name and was removed
    assert record["notes"]["ole"]["variant"] == "OLE (CLIP)"
    notes = record["notes"]["ole-prototypes"]
    assert notes["prototypes"] == 6  # K = 500 clamped to the 6 distinct label embeddings
    assert notes["outliers"] == notes["kept_prototypes"] + notes["kept_between"]
    assert notes["boundary"] == 3  # min(5, C = 3) ID components, one class each
    # grey images sit on the grey outlier prototype: far OOD is trivially separated
    assert record["metrics"]["grey"]["auroc"] > 0.99
    assert record["id_accuracy"] > 0.95


def test_second_run_reuses_prototypes_and_gives_the_same_numbers(ole_registry, ole_colour_suite,
                                                                 tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache", batch_size=16)
    params = {"ole-outliers.source": "list", "ole-outliers.words": WORDS,
              "covariance": "kmeans", "id_covariance": "kmeans"}
    first = run(RunRequest("ole", str(ole_colour_suite), params=params), ctx, ole_registry)
    second = run(RunRequest("ole", str(ole_colour_suite), params=params), ctx, ole_registry)
    assert first["metrics"] == second["metrics"]
    assert first["notes"] == second["notes"]
    assert second["cache"]["texts_encoded"] == 0
    assert len(list((tmp_path / "cache" / "ole").glob("*/*.npy"))) == 1
    raw = run(RunRequest("ole-raw", str(ole_colour_suite), params={
        "source": "list", "words": WORDS}), ctx, ole_registry)
    assert raw["labels"]["count"] == 8 and raw["notes"]["ole"]["outliers"] == 8


def test_plugin_loads_through_its_entry_point(monkeypatch):
    try:
        md.distribution("oodbench-ole")
    except md.PackageNotFoundError:
        pytest.skip("oodbench-ole is not installed (pip install -e plugins/ole)")
    monkeypatch.setenv("OODBENCH_LOAD_PLUGINS", "ole")
    reg = Registry().load()
    assert not reg.failures()
    assert "ole" in reg.names("method") and "ole-raw" in reg.names("method")
    assert reg.get("label_generator", "ole-outliers").distribution == "oodbench-ole"
    assert "ole-prototypes" in reg.names("finetuner") and "ole" in reg.names("scorer")


def test_real_data_reads_oles_official_list(ole_registry, ole_colour_suite, tmp_path,
                                            monkeypatch):
    """source=official is the paper setting on real data: a local nonus.npy is read (the
    download is pinned by sha256); without it and without the network, one line before any
    work."""
    import numpy as np

    from oodbench.errors import OfflineError
    from oodbench_ole import labels as ole_labels

    monkeypatch.setattr(ole_labels, "host_reachable", lambda url: False)
    ctx = RunContext(cache_dir=tmp_path / "cache", batch_size=16)
    fast = {"covariance": "kmeans", "id_covariance": "kmeans"}
    with pytest.raises(OfflineError, match="source=wordnet"):
        run(RunRequest("ole", str(ole_colour_suite), params=fast), ctx, ole_registry)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npy"))
    official = tmp_path / "nonus.npy"
    np.save(official, np.array(WORDS.split(",")))
    record = run(RunRequest("ole", str(ole_colour_suite),
                            params={**fast, "path": str(official)}), ctx, ole_registry)
    assert record["params"]["ole-outliers"]["source"] == "official"
    assert record["substitutions"] == {}
    assert record["labels"]["count"] == 8  # "red" is an ID name and was removed
    assert record["labels"]["source"].startswith("OLE official list")

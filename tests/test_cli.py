from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import oodbench.plugins as plugins_module
from oodbench.cli import app

runner = CliRunner()


@pytest.fixture
def cli_registry(registry, monkeypatch):
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    return registry


def test_run_prints_table_and_writes_record(cli_registry, colour_suite, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "-m", "mcm", "-s", str(colour_suite), "-o", str(out),
                                 "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
                                 "-p", "temperature=0.5", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "far average" in result.output and "ID accuracy" in result.output
    # -p overrides name the file: a run with other parameters never overwrites the default's
    (path,) = out.glob("mcm--colours--toy-colour--p*.json")
    record = json.loads(path.read_text())
    assert record["params"]["mcm"]["temperature"] == 0.5
    assert record["overrides"] == {"temperature": "0.5"}
    again = runner.invoke(app, ["run", "-m", "mcm", "-s", str(colour_suite), "-o", str(out),
                                "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
                                "--workers", "0"])
    assert again.exit_code == 0, again.output
    assert {p.name for p in out.glob("*.json")} == {"mcm--colours--toy-colour.json", path.name}


def test_unknown_method_is_one_line_exit_2(cli_registry, colour_suite):
    result = runner.invoke(app, ["run", "-m", "mmc", "-s", str(colour_suite)])
    assert result.exit_code == 2
    assert "Unknown method 'mmc'. Did you mean 'mcm'?" in result.output
    assert "Traceback" not in result.output


def test_unknown_suite_and_bad_param(cli_registry, colour_suite):
    result = runner.invoke(app, ["run", "-m", "mcm", "-s", "offline-fra"])
    assert result.exit_code == 2 and "Unknown suite 'offline-fra'" in result.output
    result = runner.invoke(app, ["run", "-m", "mcm", "-s", str(colour_suite), "-p", "bogus=1"])
    assert result.exit_code == 2 and "no component of method 'mcm'" in result.output


def test_listings(cli_registry):
    for command, expected in (["plugins", "oodbench.baselines"], ["methods", "energy"],
                              ["backbones", "toy-colour"], ["components", "maxlogit"]):
        result = runner.invoke(app, [command])
        assert result.exit_code == 0, result.output
        assert expected in result.output


def test_methods_show(cli_registry):
    result = runner.invoke(app, ["methods", "mcm"])
    assert result.exit_code == 0 and "mcm.temperature = 1.0" in result.output


def test_suites_show_reports_presence(cli_registry, colour_suite):
    result = runner.invoke(app, ["suites", "show", str(colour_suite)])
    assert result.exit_code == 0, result.output
    assert "present" in result.output and "grey" in result.output

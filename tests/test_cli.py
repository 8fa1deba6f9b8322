from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import oodbench
import oodbench.plugins as plugins_module
from oodbench import ComponentRef, MethodSpec
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


# -- conventions: help, choices, JSON listings, no truncation, OODBENCH_RESULTS ---------------
def _commands(command: Any, path: str = "oodbench") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def test_every_option_and_argument_has_help_text():
    missing = [f"{path} {param.name}" for path, command in _commands(get_command(app))
               for param in command.params if not (getattr(param, "help", None) or "").strip()]
    assert missing == []


def test_choices_show_in_help():
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "250"})  # no wrapping
    assert result.exit_code == 0
    text = result.output
    for choices in ("auto|float32|float16|bfloat16", "cpu|gpu", "paper|openood",
                    "labels|synthesize|finetune"):
        assert choices in text, choices


@pytest.mark.parametrize("command", [["plugins"], ["methods"], ["backbones"], ["components"],
                                     ["suites"]])
def test_listings_take_json(cli_registry, command):
    result = runner.invoke(app, [*command, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and rows
    names = {row.get("name") or row.get("plugin") for row in rows}
    expected = {"plugins": "oodbench.baselines.plugin", "methods": "mcm",
                "backbones": "toy-colour", "components": "maxlogit", "suites": "offline-far"}
    assert expected[command[0]] in names


def test_methods_show_takes_json(cli_registry):
    result = runner.invoke(app, ["methods", "mcm", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["name"] == "mcm"
    assert shown["components"][0]["params"] == {"temperature": 1.0}


LONG = "a-method-name-much-longer-than-any-terminal-is-wide-" * 3 + "end"


def test_listings_do_not_cut_names_when_piped(cli_registry):
    """CliRunner's stdout is not a terminal: tables take their natural width."""

    class Plugin:
        @oodbench.hookimpl
        def register_methods(self, register):
            register(MethodSpec(name=LONG, scorer=ComponentRef("mcm"),
                                description="a long description " * 8))

    assert cli_registry.add_plugin(Plugin(), LONG + "-plugin").error is None
    for command, name in (["methods"], LONG), (["plugins"], LONG + "-plugin"):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        (line,) = [ln for ln in result.stdout.splitlines() if name in ln]
        assert "…" not in line


def test_results_folder_defaults_to_oodbench_results(cli_registry, colour_suite, tmp_path,
                                                     monkeypatch):
    monkeypatch.setenv("OODBENCH_RESULTS", str(tmp_path / "records"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "-m", "mcm", "-s", str(colour_suite), "--device", "cpu",
                                 "--cache-dir", str(tmp_path / "c"), "--workers", "0"])
    assert result.exit_code == 0, result.output
    written = [p.name for p in (tmp_path / "records").glob("*.json")]
    assert written == ["mcm--colours--toy-colour.json"]
    assert not (tmp_path / "results").exists()


def test_schema_record_prints_the_record_json_schema(cli_registry, colour_suite, tmp_path):
    result = runner.invoke(app, ["schema", "record"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    ran = runner.invoke(app, ["run", "-m", "mcm", "-s", str(colour_suite), "--device", "cpu",
                              "--cache-dir", str(tmp_path / "c"), "--workers", "0",
                              "-o", str(tmp_path / "out")])
    assert ran.exit_code == 0, ran.output
    (path,) = (tmp_path / "out").glob("*.json")
    record = json.loads(path.read_text())
    assert set(schema["required"]) <= set(record) <= set(schema["properties"])
    assert {"method", "suite", "backbone", "metrics", "groups"} <= set(schema["required"])


def test_a_usage_error_is_one_line_exit_2(cli_registry):
    for args, message in ((["rnu"], "No such command 'rnu'. Did you mean 'run'?"),
                          (["run"], "Missing option '--method'"),
                          (["methods", "--jsn"], "No such option: --jsn")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert result.stdout == "" and result.stderr.count("\n") == 1, result.output
        assert result.stderr.startswith("error: ") and message in result.stderr

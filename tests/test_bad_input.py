"""The bad-input matrix: each case is a usage error that exits 2 with one line, before any work,
leaving no record and no cache behind (issue 21). Cases are (id, extra CLI args, message)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import oodbench.plugins as plugins_module
from oodbench.cli import app
from tests.reliability import matrix

CASES = [
    ("device-foo", ["--device", "foo"], "--device 'foo' is not a device"),
    ("device-tpu", ["--device", "tpu"], "is not a device"),
    ("device-cuda-index", ["--device", "cuda:9"], "--device cuda:9"),
    ("workers-negative", ["--workers", "-1"], "--workers must be >= 0"),
    ("bootstrap-negative", ["--bootstrap", "-1"], "--bootstrap must be >= 0"),
    ("batch-size-zero", ["--batch-size", "0"], "--batch-size must be >= 1"),
    ("dtype-unknown", ["--dtype", "float8"],
     "'--dtype': 'float8' is not one of 'auto', 'float32', 'float16', 'bfloat16'"),
    ("decode-unknown", ["--decode", "tpu"], "'--decode': 'tpu' is not one of 'cpu', 'gpu'"),
    ("fpr-convention-unknown", ["--fpr-convention", "x"],
     "'--fpr-convention': 'x' is not one of 'paper', 'openood'"),
    ("rerun-from-unknown", ["--rerun-from", "x"],
     "'--rerun-from': 'x' is not one of 'labels', 'synthesize', 'finetune'"),
    ("option-unknown", ["--devcie", "cpu"], "No such option: --devcie"),
    ("option-without-value", ["--batch-size"], "Option '--batch-size' requires an argument"),
    ("temperature-inf", ["-p", "temperature=inf"], "must be a finite number"),
    ("temperature-negative", ["-p", "temperature=-1"], "temperature must be > 0"),
]
CASES.append(("device-cuda-without-gpu", ["--device", "cuda"], "no CUDA GPU is visible"))


@matrix('one line naming the flag and its valid values, before any work',
        2, 'nothing', 'fix the flag')
@pytest.mark.parametrize(("case", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_usage_errors_exit_2_on_one_line_and_leave_nothing(registry, colour_suite, tmp_path,
                                                           monkeypatch, case, args, message):
    if case == "device-cuda-without-gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = CliRunner().invoke(app, ["run", "-m", "mcm", "-s", str(colour_suite), "-o", str(out),
                                      "--cache-dir", str(cache), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists() and not cache.exists()  # refused before any work


@matrix('one line: the suite/method file does not exist',
        2, 'nothing', 'fix the path or use a registered name')
@pytest.mark.parametrize(("flag", "kind"), [("-s", "Suite"), ("-m", "Method")],
                         ids=["suite-file-missing", "method-file-missing"])
def test_a_missing_yaml_file_is_named_not_unknown(registry, colour_suite, tmp_path, monkeypatch,
                                                  flag, kind):
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    args = {"-m": "mcm", "-s": str(colour_suite), flag: str(tmp_path / "nope.yaml")}
    result = CliRunner().invoke(app, ["run", "-m", args["-m"], "-s", args["-s"],
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{kind} file {tmp_path / 'nope.yaml'} does not exist" in result.output
    assert "Unknown" not in result.output and len(result.output.strip().splitlines()) == 1


@matrix('the name is printed as written; the run succeeds', 0, 'the record', 'none needed')
def test_rich_markup_in_a_set_name_is_printed_not_parsed(registry, colour_suite, tmp_path,
                                                         monkeypatch):
    """An OOD set named "anim[/bold]als" crashed the table after the record was written."""
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    text = colour_suite.read_text()
    assert "name: grey" in text
    marked = tmp_path / "marked" / colour_suite.name
    marked.parent.mkdir()
    marked.write_text(text.replace("name: grey", 'name: "anim[/bold]als"'))
    result = CliRunner().invoke(app, ["run", "-m", "mcm", "-s", str(marked), "--device", "cpu",
                                      "-o", str(tmp_path / "out"), "--workers", "0",
                                      "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "anim[/bold]als" in result.output


@matrix('a warning naming the installed plugins', None, 'nothing', 'fix OODBENCH_LOAD_PLUGINS')
def test_a_typo_in_load_plugins_warns_naming_the_installed_ones(monkeypatch, capsys):
    from oodbench.plugins import Registry

    monkeypatch.setenv("OODBENCH_LOAD_PLUGINS", "olee")
    Registry().load()
    err = capsys.readouterr().err
    assert "OODBENCH_LOAD_PLUGINS names no installed plugin olee" in err
    assert "installed:" in err


@matrix('`build` names the file and why; `check` fails',
        1, 'the invalid file, untouched', 'fix or remove the record')
@pytest.mark.parametrize(("case", "content"), [
    ("truncated", '{"schema": "oodbench.result/1", "method": "mc'),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00"),
    ("a-list", "[1, 2, 3]"),
    ("nan-metric", None),
    ("method-list", None),
], ids=["truncated", "binary", "a-list", "nan-metric", "method-list"])
def test_leaderboard_check_fails_on_any_invalid_record(tmp_path, case, content):
    """`leaderboard check` exited 0 with invalid records; `build` names each file and why."""
    import json

    from oodbench.leaderboard_cli import leaderboard_app
    from tests.test_leaderboard import fake_record

    results = tmp_path / "lb" / "results"
    results.mkdir(parents=True)
    (results / "good.json").write_text(json.dumps(fake_record("mcm")))
    bad = results / "bad.json"
    if case == "nan-metric":
        record = fake_record("msp")
        record["metrics"]["birds"]["auroc"] = float("nan")
        content = json.dumps(record)
    elif case == "method-list":
        content = json.dumps({**fake_record("msp"), "method": ["msp"]})
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    runner = CliRunner()
    args = ["--results", str(results), "--out", str(tmp_path / "lb")]
    built = runner.invoke(leaderboard_app, ["build", *args])
    assert built.exit_code == 0 and "bad.json" in built.output
    checked = runner.invoke(leaderboard_app, ["check", *args])
    assert checked.exit_code == 1 and "bad.json is not a valid result record" in checked.output


@matrix('one line naming the field, with a did-you-mean', 2, 'nothing', 'fix the method file')
@pytest.mark.parametrize(("text", "message"), [
    ("name: m\nscorer: {name: mcm, params: [1]}\n", "params must be a mapping"),
    ("name: m\nscorer: {name: mcm, param: {temperature: 2}}\n", "did you mean 'params'?"),
    ("name: m\nscorer: mcm\nfinetuner: recenter\n", "did you mean 'finetuners'?"),
    ("name: m\nscorer: mcm\nscorerr: mcm\n", "did you mean 'scorer'?"),
], ids=["params-a-list", "param-typo", "finetuner-singular", "scorer-typo"])
def test_method_file_mistakes_are_one_line_usage_errors(registry, colour_suite, tmp_path,
                                                        monkeypatch, text, message):
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    method = tmp_path / "m.yaml"
    method.write_text(text)
    result = CliRunner().invoke(app, ["run", "-m", str(method), "-s", str(colour_suite),
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@matrix('read as one fine-tuner', None, 'nothing', 'none needed')
def test_a_single_finetuner_string_is_one_finetuner_not_letters():
    from oodbench.method import ComponentRef, MethodSpec

    spec = MethodSpec.from_dict({"name": "m", "scorer": "mcm", "finetuners": "recenter"})
    assert spec.finetuners == (ComponentRef("recenter"),)


SUITE = """name: s
version: {version}
id:
  name: colours
  classes: {classes}
  test: {{type: imagefolder, root: {root}}}
prompts: {prompts}
ood:
  - {{name: grey, group: far, source: {ood}}}
"""


def _suite(tmp_path, include="", **over):
    values = {"version": 1, "classes": "[red, green]", "root": str(tmp_path / "img"),
              "prompts": '["a photo of a {}."]',
              "ood": "{type: imagefolder, root: " + str(tmp_path / "img") + "}"}
    values.update(over)
    folder = tmp_path / "suites"
    folder.mkdir(exist_ok=True)
    path = folder / "s.yaml"
    path.write_text((f"include: {include}\n" if include else "") + SUITE.format(**values))
    return path


SUITE_CASES = [
    ("version-text", {"version": "abc"}, "version must be a positive integer"),
    ("duplicate-classes", {"classes": "[red, red]"}, "appear more than once"),
    ("two-placeholders", {"prompts": '["a {} of a {}"]'}, "exactly one '{}'"),
    ("named-placeholder", {"prompts": '["{x}"]'}, "exactly one '{}'"),
    ("select-list", {"ood": "{type: offline, split: test, select: [category]}"},
     "select must map"),
    ("select-number", {"ood": "{type: offline, split: test, select: {category: 5}}"},
     "select must map"),
    ("classes-outside", {"classes": "{file: ../../../../../../../../../../etc/passwd}"},
     "lies outside the suite"),
    ("classes-absolute", {"classes": "{file: /etc/passwd}"}, "lies outside the suite"),
]


@matrix('one line naming the suite field and the fix (`run` and `suites show`)',
        2, 'nothing', 'fix the suite file')
@pytest.mark.parametrize(("case", "over", "message"), SUITE_CASES,
                         ids=[c[0] for c in SUITE_CASES])
def test_suite_file_mistakes_are_one_line_usage_errors(registry, tmp_path, monkeypatch, case,
                                                       over, message):
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    suite = _suite(tmp_path, **over)
    for args in (["suites", "show", str(suite)], ["run", "-m", "mcm", "-s", str(suite),
                                                  "-o", str(tmp_path / "out")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "root:" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "out").exists()


@matrix('one line: the include is a folder / not a text file', 2, 'nothing', 'include a YAML file')
@pytest.mark.parametrize("target", ["folder", "binary"])
def test_including_a_folder_or_a_binary_file_is_one_line(registry, tmp_path, monkeypatch,
                                                         target):
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    (tmp_path / "suites").mkdir()
    if target == "folder":
        (tmp_path / "suites" / "base").mkdir()
    else:
        (tmp_path / "suites" / "base").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    suite = _suite(tmp_path, include="base")
    result = CliRunner().invoke(app, ["run", "-m", "mcm", "-s", str(suite)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("is a folder" if target == "folder" else "is not a text") in result.output


@matrix('only ${data} and OODBENCH_* expand; other variables stay literal',
        None, 'nothing', 'none needed')
def test_only_documented_variables_expand_in_suite_paths(monkeypatch):
    from oodbench.data.sources import expand
    from oodbench.paths import data_dir

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("OODBENCH_IMAGES", "/srv/images")
    assert "sk-secret" not in str(expand("/x/${OPENAI_API_KEY}/$OPENAI_API_KEY"))
    assert str(expand("${OODBENCH_IMAGES}/a")) == "/srv/images/a"
    assert str(expand("${data}/ood")) == str(data_dir() / "ood")


@matrix('one line: no space left, naming the file',
        2, 'no record, no temporary file', 'free space or move --cache-dir / --output')
@pytest.mark.parametrize("full", ["cache", "output"])
def test_a_full_disk_is_one_line_and_leaves_nothing_partial(registry, colour_suite, tmp_path,
                                                            monkeypatch, full):
    import errno
    import os

    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    out, cache = tmp_path / "out", tmp_path / "cache"
    target = cache if full == "cache" else out
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).startswith(str(target)):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    result = CliRunner().invoke(app, ["run", "-m", "mcm", "-s", str(colour_suite), "-o", str(out),
                                      "--cache-dir", str(cache), "--workers", "0"])
    assert result.exit_code == 2, result.output
    assert "no space left on the device writing" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(out.glob("*.json")) and not list(tmp_path.rglob("*.tmp"))


def test_a_record_with_a_non_finite_number_is_not_written(tmp_path):
    """Records never hold NaN or Infinity (json.dumps writes them by default)."""
    from oodbench.errors import OODBenchError
    from oodbench.results import write_record
    from tests.test_leaderboard import fake_record

    record = fake_record("mcm")
    record["metrics"]["birds"]["aupr_in"] = float("inf")
    with pytest.raises(OODBenchError, match="non-finite number"):
        write_record(record, tmp_path)
    assert list(tmp_path.iterdir()) == []

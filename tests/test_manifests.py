"""Checksum manifests of image-folder sources: `suites manifest` / `suites verify`, the run-time
file-list check, the suite key, and that suites without a manifest keep their hashes."""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

import oodbench.cli as cli
import oodbench.plugins as plugins_module
from oodbench.cli import app
from oodbench.data.sources import read_manifest, resolve_source, verify_manifest
from oodbench.data.suite import load_suite
from oodbench.errors import MissingDataError, OODBenchError
from oodbench.paths import REPO_ROOT

runner = CliRunner()
SUITES = REPO_ROOT / "oodbench" / "suites"
# the offline suites (version 2, no manifest) keep these: a change re-runs the leaderboard
OFFLINE_HASHES = {
    "offline-far": "69033a6700da319bbedbb15bf1721f505d6562a1f4fc9c27a88c8a7313789529",
    "offline-fine": "f7ba20162a83004baeb79daae8b2f8bd3bffde06777fd3eaa8fb38544c54ec98",
    "offline-near": "754ca0862a3a9189eb08ef9ba917628ff31614580382f89ba8e4752a6c3b3bd3",
}


def _pngs(folder: Path, count: int, shade: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (4, 4), (i, shade, 0)).save(folder / f"{i}.png")


@pytest.fixture
def suite_file(tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ID classes a/b (2 PNGs each) and an OOD set with a sub-folder, both with manifests."""
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)  # no plugin discovery
    data = tmp_path / "data"
    _pngs(data / "id" / "a", 2, 1)
    _pngs(data / "id" / "b", 2, 2)
    _pngs(data / "ood", 2, 3)
    _pngs(data / "ood" / "sub", 2, 4)
    path = tmp_path / "mine.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: mine
        id:
          classes: [a, b]
          test: {{type: imagefolder, root: {data / 'id'}, manifest: sums/mine.mine.sha256}}
        ood:
          - {{name: x, source: {{type: imagefolder, root: {data / 'ood'},
                                 manifest: sums/mine.x.sha256}}}}
        """))
    return path


def _cli(*args: str) -> Any:
    return runner.invoke(app, ["suites", *args])


def _write_manifests(suite_file: Path) -> None:
    result = _cli("manifest", str(suite_file), "--out", str(suite_file.parent / "sums"))
    assert result.exit_code == 0, result.output
    assert "wrote 2 manifest(s), 8 files hashed in" in result.output


def test_manifest_is_sha256sum_format_sorted_by_path(suite_file: Path) -> None:
    _write_manifests(suite_file)
    data = suite_file.parent / "data" / "ood"
    lines = (suite_file.parent / "sums" / "mine.x.sha256").read_text().splitlines()
    assert [line[66:] for line in lines] == ["0.png", "1.png", "sub/0.png", "sub/1.png"]
    for line in lines:  # what `sha256sum -c` run in the root would check
        assert line[:64] == hashlib.sha256((data / line[66:]).read_bytes()).hexdigest()
        assert line[64:66] == "  "
    assert not list((suite_file.parent / "sums").glob(".*.tmp"))  # atomic: no leftovers


def test_verify_roundtrip_then_changed_missing_and_extra(suite_file: Path) -> None:
    _write_manifests(suite_file)
    ok = _cli("verify", str(suite_file))
    assert ok.exit_code == 0, ok.output
    assert "mine: ok (4 files)" in ok.output and "x: ok (4 files)" in ok.output
    assert "verify mine: 2 set(s), 8 files hashed in" in ok.output and "all match" in ok.output

    ood = suite_file.parent / "data" / "ood"
    with open(ood / "1.png", "ab") as handle:  # same name, other bytes
        handle.write(b"x")
    (ood / "sub" / "0.png").unlink()
    _pngs(ood / "new", 1, 9)
    bad = _cli("verify", str(suite_file), "--set", "x")
    assert bad.exit_code == 1
    assert "x: mismatch: 1 missing (sub/0.png); 1 extra (new/0.png); 1 changed (1.png)" \
        in bad.output
    assert "verify mine: 1 set(s), 3 files hashed in" in bad.output and "1 mismatched" in bad.output
    assert "mine: ok" not in bad.output  # --set checks only that set


def test_verify_library_reports_changed_files_only_by_content(suite_file: Path) -> None:
    _write_manifests(suite_file)
    suite = load_suite(suite_file)
    (suite_file.parent / "data" / "id" / "b" / "1.png").write_bytes(b"not the same")
    diff, hashed = verify_manifest(suite.id_test, "mine", suite.classes)
    assert (diff.missing, diff.extra, diff.changed, hashed) == ([], [], ["b/1.png"], 4)
    # the run-time check looks at the list only: a changed file still resolves
    assert len(resolve_source(suite.id_test, "mine", suite.classes)) == 4


def test_run_time_list_check_is_one_line_naming_verify(suite_file: Path) -> None:
    _write_manifests(suite_file)
    suite = load_suite(suite_file)
    ood = suite_file.parent / "data" / "ood"
    (ood / "0.png").unlink()
    (ood / "sub" / "1.png").unlink()
    _pngs(ood / "more", 1)
    with pytest.raises(MissingDataError) as info:
        resolve_source(suite.ood[0].source, "x", None)
    text = str(info.value)
    assert "\n" not in text
    assert "2 missing (0.png, sub/1.png); 1 extra (more/0.png)" in text
    assert text.endswith("check the copy with `oodbench suites verify mine --set x`.")


def test_manifest_does_not_change_the_fingerprint(suite_file: Path) -> None:
    _write_manifests(suite_file)
    suite = load_suite(suite_file)
    spec = suite.ood[0].source
    plain = {k: v for k, v in spec.items() if k not in ("manifest", "_suite")}
    assert resolve_source(spec, "x", None).fingerprint == \
        resolve_source(plain, "x", None).fingerprint


def test_missing_manifest_file_fails_the_run_and_show_reports_it(
        suite_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = load_suite(suite_file)  # a named but absent manifest is no parse error
    with pytest.raises(MissingDataError, match=r"manifest .*mine\.x\.sha256 does not exist"):
        resolve_source(suite.ood[0].source, "x", None)
    _write_manifests(suite_file)
    (suite_file.parent / "data" / "id" / "a" / "0.png").unlink()
    monkeypatch.setattr(cli.console, "_width", 400)  # table cells on one line each
    shown = runner.invoke(app, ["suites", "show", str(suite_file)])
    assert shown.exit_code == 0, shown.output
    assert "listing matches (4 files)" in shown.output  # x
    assert "listing differs: 1 missing (a/0.png)" in shown.output  # the ID set


def test_verify_without_any_manifest_and_unknown_set(tmp_path: Path, suite_file: Path) -> None:
    plain = tmp_path / "plain.yaml"
    text = suite_file.read_text().replace("name: mine", "name: plain")
    plain.write_text(re.sub(r",\s*manifest: [^}]+", "", text))
    assert "manifest" not in plain.read_text()
    result = _cli("verify", str(plain))
    assert result.exit_code == 1 and "no set has a manifest" in result.output
    result = _cli("verify", str(suite_file), "--set", "y")
    assert result.exit_code == 1 and "has no set 'y'; sets: mine, x." in result.output


def test_bad_manifest_line_is_one_line(suite_file: Path) -> None:
    (suite_file.parent / "sums").mkdir()
    (suite_file.parent / "sums" / "mine.x.sha256").write_text("abc  0.png\n")
    suite = load_suite(suite_file)
    with pytest.raises(OODBenchError, match=r"line 1 is not '<sha256>  <path>'"):
        read_manifest(suite.ood[0].source, "x")


# -- the suite file key ---------------------------------------------------------------------------
def test_manifest_key_resolves_next_to_the_suite_and_unknown_keys_still_fail(
        tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        name: s
        id:
          classes: [a]
          test: {type: imagefolder, root: /nowhere, manifest: m/id.sha256}
        ood:
          - {name: x, source: {type: imagefolder, root: /nowhere}}
        """)
    (tmp_path / "s.yaml").write_text(text)
    suite = load_suite(tmp_path / "s.yaml")
    assert suite.id_test["manifest"] == str((tmp_path / "m" / "id.sha256").resolve())
    assert "manifest" not in suite.ood[0].source  # untouched without one
    (tmp_path / "s.yaml").write_text(text.replace("manifest:", "manifests:"))
    with pytest.raises(OODBenchError, match=r"unknown field 'id\.test\.manifests' \(did you mean "
                                               r"'manifest'\?\)"):
        load_suite(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text(
        text.replace("root: /nowhere}}", "root: /nowhere}}\n  - {name: y, source: "
                     "{type: offline, split: test, manifest: m.sha256}}"))
    with pytest.raises(OODBenchError, match=r"unknown field 'ood\[1\]\.source\.manifest'; "
                                               r"allowed: type, obtain, expected_count, split"):
        load_suite(tmp_path / "s.yaml")


@pytest.mark.parametrize("name", sorted(OFFLINE_HASHES))
def test_offline_suite_hashes_are_unchanged(name: str) -> None:
    suite = load_suite(SUITES / f"{name}.yaml")
    assert suite.hash == OFFLINE_HASHES[name]
    for source in (suite.id_test, suite.id_train, *(s.source for s in suite.ood)):
        assert source is not None and "manifest" not in source and "_suite" not in source

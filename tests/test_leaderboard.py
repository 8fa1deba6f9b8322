from __future__ import annotations

import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import oodbench
from oodbench import leaderboard, significance
from oodbench.leaderboard import compare, plots
from oodbench.leaderboard_cli import leaderboard_app
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext

REPO = Path(__file__).resolve().parents[1]
SETS = {"birds": ("near", 0.40, 0.90), "flags": ("far", 0.10, 0.97)}


def fake_record(method: str, sets: dict[str, tuple[str, float, float]] | None = None,
                suite: str = "offline-toy", backbone: str = "mini", convention: str = "paper",
                source: str = "offline", id_accuracy: float = 0.8) -> dict[str, Any]:
    """A small valid record: ``sets`` maps OOD set -> (group, FPR95, AUROC)."""
    sets = sets or SETS
    metrics = {name: {"group": g, "auroc": a, "fpr95": f, "aupr_in": a, "aupr_out": a,
                      "n_id": 10, "n_ood": 10} for name, (g, f, a) in sets.items()}
    groups = {}
    for group in ("near", "far"):
        members = [m for m in metrics.values() if m["group"] == group]
        if members:
            groups[group] = {k: sum(m[k] for m in members) / len(members)
                             for k in ("auroc", "fpr95", "aupr_in", "aupr_out")}
    curve = {"edges": [0.0, 0.5, 1.0], "id_hist": [1, 3], "ood_hist": [3, 1],
             "roc_fpr": [0.0, 0.25, 1.0], "roc_tpr": [0.0, 0.9, 1.0]}
    return {"schema": "oodbench.result/1", "method": method, "params": {method: {"t": 1.0}},
            "suite": {"name": suite, "version": 1, "hash": "ab" * 32, "task": "far"},
            "backbone": {"name": backbone, "params": {}, "fingerprint": "fp"},
            "source": source, "metrics": metrics, "groups": groups,
            "id_accuracy": id_accuracy, "fpr_convention": convention,
            "curves": {name: curve for name in sets},
            "environment": {"oodbench": "0.1.0", "git_revision": "0123456789abcdef+dirty"},
            "seed": 0, "created": "2026-01-02T03:04:05+00:00", "timings": {"total": 1.0}}


def write(folder: Path, name: str, record: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


@pytest.fixture
def board(tmp_path) -> Path:
    """leaderboard/ with two offline records of one suite."""
    results = tmp_path / "lb" / "results"
    write(results, "mcm.json", fake_record("mcm"))
    write(results, "energy.json", fake_record("energy", {"birds": ("near", 0.2, 0.85),
                                                        "flags": ("far", 0.3, 0.99)}))
    return tmp_path / "lb"


def cli(*args: str):
    app = typer.Typer()
    app.add_typer(leaderboard_app, name="leaderboard")
    return CliRunner().invoke(app, ["leaderboard", *args])


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


PAGE = "offline-toy.html"  # fake_record's suite page


def test_build_twice_gives_identical_bytes(board, tmp_path):
    result = cli("build", "--results", str(board / "results"), "--out", str(board))
    assert result.exit_code == 0, result.output
    first = files(board)
    assert sorted(first) == ["README.md", "index.html", PAGE]
    leaderboard.build(board / "results", tmp_path / "again")
    assert files(tmp_path / "again") == first
    assert leaderboard.build(board / "results", board) and files(board) == first
    assert cli("check", "--results", str(board / "results"), "--out",
               str(board)).exit_code == 0


def test_check_detects_an_edited_readme_and_an_edited_record(board):
    leaderboard.build(board / "results", board)
    readme = board / "README.md"
    original = readme.read_text()
    readme.write_text(original.replace("mcm", "mcm-tuned", 1))
    result = cli("check", "--results", str(board / "results"), "--out", str(board))
    assert result.exit_code == 1
    assert "README.md differs" in result.output and "leaderboard build" in result.output
    readme.write_text(original)
    record = json.loads((board / "results" / "mcm.json").read_text())
    record["metrics"]["flags"]["auroc"] = 0.5
    write(board / "results", "mcm.json", record)
    result = cli("check", "--results", str(board / "results"), "--out", str(board))
    assert result.exit_code == 1 and "index.html differs" in result.output
    (board / "index.html").unlink()
    assert "index.html is missing" in cli("check", "--results", str(board / "results"),
                                          "--out", str(board)).output


def _two_suites(results: Path) -> Path:
    write(results, "a.json", fake_record("mcm", suite="offline-a"))
    write(results, "b.json", fake_record("mcm", suite="offline-b"))
    write(results, "c.json", fake_record("energy", suite="offline-b"))
    return results


def test_build_writes_one_page_per_suite_and_a_landing_page(tmp_path):
    results = _two_suites(tmp_path / "lb" / "results")
    leaderboard.build(results, tmp_path / "lb")
    assert sorted(files(tmp_path / "lb")) == ["README.md", "index.html", "offline-a.html",
                                              "offline-b.html"]
    index = (tmp_path / "lb" / "index.html").read_text()
    for suite in ("offline-a", "offline-b"):
        page = (tmp_path / "lb" / f"{suite}.html").read_text()
        assert f'<a href="{suite}.html">{suite}</a>' in index  # the landing page links it
        assert '<a href="index.html">' in page and "<svg" in page  # and it links back
        assert page.splitlines()[1] == leaderboard.page.GENERATED
    assert "2 records" in index and "offline-b.html#offline-offline-b-paper" in index
    tables = re.findall(r"<table.*?</table>", index, re.S)
    assert len(tables) == 2 and not any("birds" in t for t in tables)  # per-set: suite pages


def test_build_removes_only_its_own_stale_pages(tmp_path):
    out = tmp_path / "lb"
    results = _two_suites(out / "results")
    leaderboard.build(results, out)
    mine = write(out, "notes.html", "<!DOCTYPE html>\n<p>hand-written</p>\n")
    quoting = write(out, "quote.html", "<p>no mark on top</p>\n" * 5
                    + leaderboard.page.GENERATED + "\n")
    (results / "a.json").unlink()
    assert "offline-a.html is a generated page of a suite without records" in cli(
        "check", "--results", str(results), "--out", str(out)).output
    leaderboard.build(results, out)
    assert not (out / "offline-a.html").exists() and (out / "offline-b.html").exists()
    assert mine.exists() and quoting.exists()  # not written by build: never deleted
    assert "offline-a" not in (out / "index.html").read_text()
    assert leaderboard.check(results, out)[1] == []


def test_check_names_a_missing_and_an_extra_page(tmp_path):
    out = tmp_path / "lb"
    results = _two_suites(out / "results")
    leaderboard.build(results, out)
    (out / "offline-b.html").unlink()
    stale = out / "offline-gone.html"
    stale.write_text((out / "offline-a.html").read_text())
    result = cli("check", "--results", str(results), "--out", str(out))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert sum("offline-b.html is missing" in line for line in lines) == 1
    assert sum("offline-gone.html is a generated page of a suite without records" in line
               for line in lines) == 1
    (out / "offline-a.html").write_text("edited\n")
    assert "offline-a.html differs" in cli("check", "--results", str(results), "--out",
                                           str(out)).output


def test_page_names_are_safe_and_distinct(tmp_path):
    results = tmp_path / "results"
    for i, suite in enumerate(("index", "My Suite/1", "my-suite-1", "offline-toy")):
        write(results, f"{i}.json", fake_record("mcm", suite=suite))
    names = leaderboard.page_names(leaderboard.collect(results))
    assert names == {"index": "index-2.html", "My Suite/1": "my-suite-1.html",
                     "my-suite-1": "my-suite-1-2.html", "offline-toy": "offline-toy.html"}


def test_invalid_records_are_named_and_skipped(board):
    write(board / "results", "broken.json", "{not json")
    bad = fake_record("msp")
    bad["metrics"]["flags"]["auroc"] = 7.0
    write(board / "results", "bad.json", bad)
    write(board / "results", "odd.json", {**fake_record("odd"), "groups": [], "params": 3})
    result = cli("build", "--results", str(board / "results"), "--out", str(board))
    assert result.exit_code == 0
    assert "broken.json" in result.output and "bad.json" in result.output
    readme = (board / "README.md").read_text()
    skipped = readme.split("## Skipped records")[1]
    # one line per file, naming the field (validate_record's words) and the fix
    assert "- `bad.json`: metrics.flags.auroc: input should be less than" in skipped
    assert "- `broken.json`: not readable JSON (JSONDecodeError); fix or remove" in skipped
    assert "- `odd.json`: params " in skipped and "(+1 more)" in skipped
    assert all("\n" not in line.strip() and "fix" in line for line in skipped.split("\n- ")[1:])
    assert "| msp |" not in readme  # never averaged into a table
    checked = cli("check", "--results", str(board / "results"), "--out", str(board))
    assert checked.exit_code == 1
    assert "odd.json is not a valid result record: params " in checked.output


def test_conventions_and_sources_never_share_a_table(tmp_path):
    results = tmp_path / "results"
    write(results, "a.json", fake_record("mcm"))
    write(results, "b.json", fake_record("mcm", convention="openood"))
    write(results, "c.json", fake_record("mcm", suite="imagenet-far", source="real"))
    board = leaderboard.collect(results)
    keys = [(t.source, t.suite, t.convention) for t in board.tables]
    assert keys == [("offline", "offline-toy", "openood"), ("offline", "offline-toy", "paper"),
                    ("real", "imagenet-far", "paper")]
    assert all(len(t.entries) == 1 for t in board.tables)
    readme = leaderboard.render_markdown(board)
    offline, real = readme.split("## Real suites")
    assert "### offline-toy · FPR95 convention: openood" in offline
    assert "### offline-toy · FPR95 convention: paper" in offline
    assert "imagenet-far" in real and "imagenet-far" not in offline


def test_best_value_of_each_column_is_marked(board):
    readme = leaderboard.render_markdown(leaderboard.collect(board / "results"))
    rows = {line.split("|")[2].strip(): line for line in readme.splitlines()
            if re.match(r"\| \d \|", line)}
    # energy: birds FPR 20 (best) AUROC 85; flags FPR 30, AUROC 99 (best); mcm the others
    assert "| **20.00** / 85.00 | 30.00 / **99.00** |" in rows["energy"]
    assert "| 40.00 / **90.00** | **10.00** / 97.00 |" in rows["mcm"]
    assert list(rows) == ["mcm", "energy"]  # ranked by mean AUROC: 93.5 > 92.0
    pages = leaderboard.render(leaderboard.collect(board / "results"))
    # two per OOD set, two per group average; none for ID acc, where both rows tie
    assert pages[PAGE].count('class="num best"') == 4 + 4
    assert pages["index.html"].count('class="num best"') == 4  # the group averages only


def test_reported_numbers_get_their_own_labelled_tables(board):
    (board / "reported.yaml").write_text(
        "tables:\n"
        "  - title: CLIP ViT-B/16, ImageNet-1K far\n"
        "    source: published\n"
        "    columns: [iNaturalist, average]\n"
        "    rows:\n"
        "      - {method: MCM, tag: '[2nd]', values: {iNaturalist: [30.91, 94.61]}}\n")
    built = leaderboard.build(board / "results", board, leaderboard.default_reported(
        board / "results"))
    assert built.reported
    readme = (board / "README.md").read_text()
    measured, reported = readme.split("## Reported (not measured here)")
    assert "MCM" not in measured and "| MCM (reported) | 30.91 / 94.61 | – | [2nd] |" in reported
    assert "Reported (not measured here)" in (board / "index.html").read_text()
    (board / "reported.yaml").write_text("tables: 3\n")
    result = cli("build", "--results", str(board / "results"), "--out", str(board))
    assert result.exit_code == 1 and "reported.yaml" in result.output


def test_html_pages_need_no_network(board):
    pages = leaderboard.render(leaderboard.collect(board / "results"))
    for html in (pages["index.html"], pages[PAGE]):
        without_ns = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http://" not in without_ns and "https://" not in without_ns
        assert "<script src" not in html and "<link" not in html
    assert pages[PAGE].count("<svg") == 2 + 2 * 2  # one ROC per set, one histogram per row x set
    assert "<svg" not in pages["index.html"]


def test_missing_results_folder_is_a_one_line_error(tmp_path):
    result = cli("build", "--results", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert result.exit_code == 1 and "does not exist" in result.output


def test_runner_records_build_and_check(registry, colour_suite, tmp_path):
    results = tmp_path / "results"
    ctx = RunContext(cache_dir=tmp_path / "cache", batch_size=16)
    for method in ("mcm", "energy"):
        run(RunRequest(method, str(colour_suite), output_dir=results), ctx, registry)
    board = leaderboard.build(results, tmp_path)
    assert [e.method for e in board.tables[0].entries] == ["energy", "mcm"]
    assert board.tables[0].sets == [("secondary", "near"), ("grey", "far")]
    html = (tmp_path / leaderboard.page_names(board)["colours"]).read_text()
    assert html.count(" d=\"M") > 4  # ROC and histogram paths from the records' curves
    assert leaderboard.check(results, tmp_path)[1] == []


def _ci_module():
    spec = importlib.util.spec_from_file_location("leaderboard_ci",
                                                  REPO / "scripts" / "leaderboard_ci.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ci_script_updates_then_compares_within_tolerance(registry, colour_suite, tmp_path,
                                                           capsys):
    suites = tmp_path / "suites"
    suites.mkdir()
    text = colour_suite.read_text().replace("name: colours", "name: offline-colours")
    (suites / "offline-colours.yaml").write_text(text)

    class Suites:
        @oodbench.hookimpl
        def register_suites(self, register):
            register(suites)

    registry.add_plugin(Suites(), "ci-suites")
    ci = _ci_module()
    out = tmp_path / "lb"
    # records written here carry this checkout's revision, "+dirty" in a working tree
    args = ["--results", str(out / "results"), "--out", str(out), "--suites", "offline-colours",
            "--methods", "mcm,energy", "--allow-dirty"]
    assert ci.main([*args, "--update"], registry=registry) == 0
    assert sorted(p.name for p in (out / "results").iterdir()) == [  # records + their scores
        "energy--offline-colours--toy-colour.json",
        "energy--offline-colours--toy-colour.scores.npz",
        "mcm--offline-colours--toy-colour.json", "mcm--offline-colours--toy-colour.scores.npz"]
    assert ci.main(args, registry=registry) == 0
    assert "total" in capsys.readouterr().out

    path = out / "results" / "mcm--offline-colours--toy-colour.json"
    record = json.loads(path.read_text())
    record["metrics"]["grey"]["auroc"] -= 0.004  # within the tolerance ...
    record["id_accuracy"] -= 0.1  # ... this is not
    path.write_text(json.dumps(record))
    leaderboard.build(out / "results", out)
    write(out / "results", "msp--offline-colours--toy-colour.json",
          {**record, "method": "gone"})
    leaderboard.build(out / "results", out)
    assert ci.main([*args, "--methods", "mcm,energy,gone"], registry=registry) == 1
    report = capsys.readouterr().out
    assert "id_accuracy: committed" in report and "grey.auroc" not in report
    assert "msp--offline-colours--toy-colour.json: extra committed record" in report


def test_ci_fpr95_allows_a_few_images_across_the_threshold():
    """FPR95 moves in steps of 1/n: two images of a set may cross the threshold (CPU float
    differences between machines), a third may not; other metrics keep the plain tolerance."""
    ci = _ci_module()
    old = {"metrics": {"a": {"auroc": 0.9, "fpr95": 0.50, "aupr_in": 0.9, "aupr_out": 0.9}},
           "counts": {"ood": {"a": 100}}, "id_accuracy": 0.8, "suite": {"hash": "h"},
           "backbone": {"fingerprint": "f"}, "params": {}}
    new = json.loads(json.dumps(old))
    new["metrics"]["a"]["fpr95"] = 0.52  # two images of 100
    assert ci.compare_record(new, old, 0.005) == []
    new["metrics"]["a"]["fpr95"] = 0.53
    assert any("a.fpr95" in p for p in ci.compare_record(new, old, 0.005))
    assert ci.compare_record(new, old, 0.005, fpr95_images=3) == []
    new["metrics"]["a"]["fpr95"], new["metrics"]["a"]["auroc"] = 0.50, 0.91
    assert any("a.auroc" in p for p in ci.compare_record(new, old, 0.005))


def test_stand_in_rows_are_marked_and_never_ranked_with_paper_rows(tmp_path):
    results = tmp_path / "results"
    write(results, "paper.json", fake_record("synood", suite="imagenet-far", source="real"))
    stand_in = fake_record("synood", suite="imagenet-far", source="real",
                           sets={"birds": ("near", 0.01, 0.99), "flags": ("far", 0.01, 0.99)})
    stand_in["substitutions"] = {"synood-synthesizer.inpainter": "mini-diffusion",
                                 "synood-synthesizer.per_class": 4}
    write(results, "stand-in.json", stand_in)
    tables = leaderboard.collect(results).tables
    assert [(t.stand_ins, [e.label for e in t.entries]) for t in tables] == [
        (False, ["synood"]), (True, ["synood · mini-diffusion, per_class=4"])]
    text = leaderboard.render_markdown(leaderboard.collect(results))
    assert "imagenet-far · FPR95 convention: paper · with stand-ins" in text
    assert "| 1 | synood · mini-diffusion, per_class=4 |" in text


def test_ci_refuses_committed_records_from_a_dirty_tree(tmp_path):
    ci = _ci_module()
    results = tmp_path / "results"
    clean, dirty = fake_record("mcm"), fake_record("msp")
    clean["environment"]["git_revision"] = "0123456789abcdef"
    write(results, "mcm.json", clean)
    write(results, "msp.json", dirty)  # fake_record's revision ends in +dirty
    problems = ci.dirty_records(results)
    assert len(problems) == 1 and problems[0].startswith("msp.json: written from a dirty tree")


# -- plots ---------------------------------------------------------------------------------------
def _many_methods(folder: Path, n: int) -> Path:
    for i in range(n):
        auroc = 0.80 + i / 200
        write(folder, f"m{i:02d}.json", fake_record(f"m{i:02d}", {
            "birds": ("near", 0.4, auroc), "flags": ("far", 0.2, auroc)}))
    return folder


def test_every_row_of_a_table_gets_its_own_colour(tmp_path):
    board = leaderboard.collect(_many_methods(tmp_path / "results", 23))
    html = leaderboard.render_suite(board, "offline-toy")
    legend = html.split('<div class="legend">')[1].split("</div>")[0]
    colours = re.findall(r'background:([^"]+)"', legend)
    assert len(colours) == 23 and len(set(colours)) == 23  # 13+ methods once shared 10
    roc = re.search(r"<svg.*?</svg>", html).group(0)
    assert sorted(re.findall(r'class="roc" d="[^"]*" stroke="([^"]+)"', roc)) == sorted(colours)
    assert len({plots.colour(i) for i in range(200)}) == 200


def test_every_svg_shape_has_a_hover_title(board):
    html = leaderboard.render(leaderboard.collect(board / "results"))[PAGE]
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert svgs
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.find("title") is not None
        shapes = [e for e in root.iter() if e.tag in ("path", "rect", "line", "circle")]
        assert shapes and all(e.find("title") is not None and e.find("title").text
                              for e in shapes), svg[:200]
    assert "<title>mcm / mini: AUROC 97.00, FPR95 10.00 on flags</title>" in html
    assert "<title>ID: 4 images</title>" in html and "<title>OOD: 4 images</title>" in html


def test_paths_use_whole_pixels_and_the_shortest_commands():
    # up, right twice (merged), down, a diagonal; relative where it is shorter
    points = [(0, 0), (0, 5), (3, 5), (6, 5), (6, 2), (6, 2), (100.4, 40.6)]
    assert plots.polyline(points) == "M0,0V5H6V2l94,39"
    assert plots.polyline([(100, 100), (101, 100), (101, 99), (99.6, 99)]) == "M100,100h1V99h-1"
    # a step back along the same axis is kept, not merged away
    assert plots.polyline([(0, 0), (10, 0), (4, 0)]) == "M0,0H10H4"


def test_committed_pages_stay_small():
    # 51 records, 17 methods x 3 suites: index.html 22,900 bytes; offline-far.html 84,545,
    # offline-fine.html 84,781, offline-near.html 108,589 (`ls -l leaderboard/*.html`)
    folder = REPO / "leaderboard"
    assert (folder / "index.html").stat().st_size < 60_000
    pages = [p for p in folder.glob("*.html") if p.name != "index.html"]
    assert pages and all(p.stat().st_size < 150_000 for p in pages), [
        (p.name, p.stat().st_size) for p in pages]


def test_thumbnails_are_coarse_enough_for_a_small_page():
    edges, (a, b) = plots.merged_bins([0.0, 1, 2, 3, 4], [[1, 2, 3, 4], [4, 3, 2, 1]], most=2)
    assert edges == [0.0, 2, 4] and a == [3, 7] and b == [7, 3]
    assert plots.thinned([(0, 0), (1, 1), (3, 3), (3, 4)], step=4) == [(0, 0), (3, 3), (3, 4)]


# -- significance and intervals --------------------------------------------------------------
def scored(folder: Path, method: str, id_scores: Any, ood: dict[str, Any]) -> dict[str, Any]:
    """A record whose metrics come from the given scores, with its scores sidecar."""
    record = fake_record(method)
    for name, values in ood.items():
        record["metrics"][name].update(auroc=significance.auroc(id_scores, values),
                                       n_id=len(id_scores), n_ood=len(values))
    write(folder, f"{method}.json", record)
    significance.write_scores(folder / f"{method}.json", id_scores, ood)
    return record


@pytest.fixture
def scored_board(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    results = tmp_path / "results"
    id_s = rng.normal(0, 1, 120)
    ood = {"birds": rng.normal(0, 1, 80), "flags": rng.normal(0, 1, 60)}
    scored(results, "mcm", id_s + 1.0, ood)  # the baseline
    scored(results, "energy", id_s + 1.0, ood)  # the same scores: not significant
    scored(results, "ole", id_s + 6.0, ood)  # far apart: significantly better
    scored(results, "msp", id_s + 0.2, ood)  # worse than mcm
    write(results, "plain.json", fake_record("plain"))  # no scores: no mark
    return results


def test_rows_are_marked_against_the_best_baseline_only_when_significant(scored_board):
    board = leaderboard.collect(scored_board)
    readme = leaderboard.render_markdown(board)
    rows = {line.split(" | ")[1]: line for line in readme.splitlines()
            if re.match(r"\| \d \|", line)}
    assert "| vs baseline |" in readme and compare.BASELINES[:4] == ("msp", "maxlogit",
                                                                     "energy", "mcm")
    # energy and mcm hold the same scores and tie in rank; energy ranks first by name
    assert " | baseline | " in rows["energy"]
    assert " | ≈ n.s. +0.00 [+0.00, +0.00], p 1.000 | " in rows["mcm"]
    assert re.search(r" \| ▲ better \+\d+\.\d\d \[\+\d", rows["ole"])
    assert re.search(r" \| ▼ worse -\d+\.\d\d \[-\d+\.\d\d, -\d", rows["msp"])
    assert " | – | " in rows["plain"]
    assert "a higher rank alone does not make a row better" in readme
    html = leaderboard.render_html(board)
    assert '<td class="up">▲ better' in html and '<td class="down">▼ worse' in html
    assert "<th>vs baseline</th>" in html


def test_no_scores_no_significance_column(board):
    built = leaderboard.collect(board / "results")
    assert not built.tables[0].marks
    readme = leaderboard.render_markdown(built)
    assert "| vs baseline |" not in readme and "paired bootstrap" not in readme


def test_scores_that_do_not_give_the_record_are_refused(scored_board, tmp_path):
    record = json.loads((scored_board / "ole.json").read_text())
    record["metrics"]["birds"]["auroc"] = 0.5
    write(scored_board, "ole.json", record)
    board = leaderboard.collect(scored_board)
    assert [name for name, _ in board.skipped] == ["ole.scores.npz"]
    assert "give AUROC 1.000000 on birds, the record 0.500000" in board.skipped[0][1]
    ole_row = next(line for line in leaderboard.render_markdown(board).splitlines()
                   if "| ole |" in line)
    assert " | – | " in ole_row
    leaderboard.build(scored_board, tmp_path / "out")
    result = cli("check", "--results", str(scored_board), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "ole.scores.npz is not a valid result record" in \
        result.output


def test_bootstrap_intervals_are_shown_where_records_hold_them(tmp_path):
    results = tmp_path / "results"
    record = fake_record("mcm")
    record["metrics"]["birds"]["ci"] = {"auroc": [0.8812, 0.9133], "fpr95": [0.35, 0.45]}
    write(results, "mcm.json", record)
    board = leaderboard.collect(results)
    readme = leaderboard.render_markdown(board)
    assert "| 40.00 [35.00, 45.00] / 90.00 [88.12, 91.33] | 10.00 / 97.00 |" in readme
    assert "bootstrap 95 % interval" in readme
    assert "90.00 [88.12, 91.33]</td>" in leaderboard.render_suite(board, "offline-toy")
    assert "[88.12" not in leaderboard.render_html(board)  # per-set cells: the suite page's


def test_ci_update_carries_and_removes_scores_sidecars(tmp_path):
    ci = _ci_module()
    results = tmp_path / "results"
    record = fake_record("mcm", suite="offline-toy")
    fresh = write(tmp_path / "fresh", "mcm--offline-toy--mini.json", record)
    significance.write_scores(fresh, [0.9, 0.8], {"birds": [0.1], "flags": [0.95]})
    stale = write(results, "energy--offline-toy--mini.json", fake_record("energy"))
    significance.write_scores(stale, [0.9], {"birds": [0.1], "flags": [0.2]})
    outcome = ci.Outcome("mcm", "offline-toy", "ok", record=record, path=fresh)
    ci.update([outcome], results, {("mcm", "offline-toy"): "mini"}, {"offline-toy": "mini"})
    assert sorted(p.name for p in results.iterdir()) == [
        "mcm--offline-toy--mini.json", "mcm--offline-toy--mini.scores.npz"]
    assert significance.read_scores(results / "mcm--offline-toy--mini.scores.npz").ood[
        "flags"].tolist() == [[0.95]]

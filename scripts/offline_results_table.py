#!/usr/bin/env python3
"""Write the offline method results (from leaderboard/results) into benchmarks/README.md.

    python scripts/offline_results_table.py [--check]

One table per offline suite: every method's near / far FPR95 and AUROC (mean ± std over
generations where a record has several), the number of extra labels, ID accuracy and the wall
time of the recorded run. The tables replace the text between the two markers below in
benchmarks/README.md; ``--check`` exits 1 if that text is not what the records give.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "leaderboard" / "results"
README = REPO / "benchmarks" / "README.md"
START, END = "<!-- offline-results:start -->", "<!-- offline-results:end -->"


def _cell(record: dict[str, Any], group: str, key: str) -> str:
    entry = record["groups"].get(group)
    if entry is None:
        return "–"
    text = f"{100 * entry[key]:.2f}"
    std = ((record.get("generations") or {}).get("std") or {}).get("groups", {}).get(group)
    return f"{text} ± {100 * std[key]:.2f}" if std and key in std else text


def table(records: list[dict[str, Any]]) -> list[str]:
    rows = sorted(records, key=lambda r: -sum(g["auroc"] for g in r["groups"].values())
                  / max(1, len(r["groups"])))
    lines = ["| method | near FPR95 ↓ | near AUROC ↑ | far FPR95 ↓ | far AUROC ↑ | labels | "
             "ID acc | wall s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gens = (r.get("generations") or {}).get("n", 1)
        labels = (r.get("labels") or {}).get("count", "–")
        name = f"{r['method']} ({gens} gen.)" if gens > 1 else r["method"]
        lines.append(
            f"| {name} | {_cell(r, 'near', 'fpr95')} | {_cell(r, 'near', 'auroc')} | "
            f"{_cell(r, 'far', 'fpr95')} | {_cell(r, 'far', 'auroc')} | {labels} | "
            f"{100 * r['id_accuracy']:.2f} | {r['timings']['total']:.1f} |")
    return lines


def render(results: Path = RESULTS) -> str:
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(results.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("source") == "offline" and record.get("fpr_convention") == "paper":
            by_suite.setdefault(record["suite"]["name"], []).append(record)
    out = [START, "",
           "Generated from `leaderboard/results/` by `python scripts/offline_results_table.py` "
           "(mini backbone, CPU; FPR95/AUROC in %, paper FPR95 convention; ± is the sample std "
           "over generations; wall time of the recorded run on a 2-core machine shared with other "
           "jobs, reusing image features and generated artefacts (label banks, images) cached "
           "by earlier runs: a generative method's first run costs more, see the plugin "
           "READMEs).", ""]
    for suite in sorted(by_suite):
        out += [f"**{suite}**", "", *table(by_suite[suite]), ""]
    out.append(END)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = README.read_text()
    if START not in text or END not in text:
        print(f"{README}: add the markers {START} / {END} where the tables belong")
        return 1
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    new = head + render() + tail
    if args.check:
        ok = new == text
        print("offline results tables up to date" if ok else
              f"{README} differs from the records: run python scripts/offline_results_table.py")
        return 0 if ok else 1
    README.write_text(new)
    print(f"wrote the offline results tables into {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

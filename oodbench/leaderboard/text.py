"""Cell texts shared by the markdown and the HTML leaderboard: numbers, ± over generations,
bootstrap intervals, significance marks, provenance and parameters."""

from __future__ import annotations

import json
from typing import Any

from oodbench.leaderboard.compare import Marks
from oodbench.leaderboard.records import Entry
from oodbench.leaderboard.tables import Table
from oodbench.significance import RESAMPLES

DASH = "–"
REPORTED_NOTE = ("Published numbers copied from papers, **not measured here**: other data, "
                 "backbones and code, so never compare them cell by cell with the measured "
                 "tables above. Cells are FPR95 ↓ / AUROC ↑ in %.")


def pct(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.2f}"


def pm(std: float | None) -> str:
    """`` ± s`` (in %) for a mean over generations; empty for a single run."""
    return "" if std is None else f" ± {100 * std:.2f}"


def generations_text(entry: Entry) -> str:
    """E.g. ``3 generations (seeds 0–2, 1 distinct label set)``; empty for a single run."""
    block = entry.generations
    if block is None:
        return ""
    seeds = block.get("seeds") or []
    span = f"{min(seeds)}–{max(seeds)}" if seeds else DASH
    distinct = block.get("distinct_label_sets")
    sets = f"{distinct} distinct label set{'' if distinct == 1 else 's'}"
    return f"{block['n']} generations (seeds {span}, {sets})"


GENERATIONS_NOTE = ("Cells with ± are the mean ± standard deviation (sample, ddof 1) over the "
                    "record's independent generations (label generator seeds = run seed + "
                    "0..N-1); equal label banks share their scores.")


def provenance(entry: Entry) -> dict[str, str]:
    """Short reproduction details: date, version, git revision, suite hash prefix, seed."""
    rec, env = entry.record, entry.record["environment"]
    rev = env.get("git_revision") or ""
    short = rev[:7] + ("+dirty" if rev.endswith("+dirty") else "") if rev else DASH
    return {
        "date": str(rec.get("created", ""))[:10] or DASH,
        "version": str(env.get("oodbench") or DASH),
        "git": short,
        "suite": f"v{rec['suite'].get('version', '?')} {str(rec['suite'].get('hash', ''))[:8]}",
        "seed": str(rec.get("seed")),
    }


def params_text(entry: Entry) -> str:
    """Method parameters as ``component.key=value`` pairs, sorted."""
    pairs = []
    for component, params in sorted((entry.record.get("params") or {}).items()):
        for key, value in sorted(params.items() if isinstance(params, dict) else []):
            if key != "role":
                pairs.append(f"{component}.{key}={json.dumps(value, sort_keys=True)}")
    return ", ".join(pairs) or DASH



def reported_cell(value: Any) -> str:
    """``[FPR95, AUROC]`` in % as published; missing parts are dashes."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return DASH
    return " / ".join(DASH if v is None else f"{float(v):.2f}" for v in value)


def ci_text(interval: tuple[float, float] | None) -> str:
    """`` [low, high]`` (in %) for a cell with a bootstrap interval; empty without one."""
    return "" if interval is None else f" [{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"


CI_NOTE = ("[low, high] after a value: its bootstrap 95 % interval over the images "
           "(`oodbench run --bootstrap N`).")
SIGNIFICANCE_NOTE = (
    "*vs baseline*: the row's mean AUROC minus the best core baseline's (*baseline*), in "
    f"points, with the 95 % interval of a paired bootstrap over the same images ({RESAMPLES} "
    "joint resamples of the ID and every OOD set, seed 0) and the two-sided p-value. ▲ better "
    "and ▼ worse only when the interval excludes 0; ≈ n.s. otherwise: a higher rank alone does "
    "not make a row better. – : the record has no per-image scores.")


def mark_text(marks: Marks, row: int) -> str:
    """The row's significance mark against the table's baseline (see SIGNIFICANCE_NOTE)."""
    if row == marks.baseline:
        return "baseline"
    comparison = (marks.rows or {}).get(row)
    if comparison is None:
        return DASH
    verdict = {"better": "▲ better", "worse": "▼ worse", "n.s.": "≈ n.s."}[comparison.verdict]
    p = comparison.p_value
    return (f"{verdict} {100 * comparison.delta:+.2f} [{100 * comparison.low:+.2f}, "
            f"{100 * comparison.high:+.2f}], p {'< 0.001' if p < 0.001 else f'{p:.3f}'}")


def notes(table: Table) -> list[str]:
    """The notes a table needs: ± over generations, [low, high] intervals, significance."""
    entries = table.entries
    return [note for note, needed in (
        (GENERATIONS_NOTE, any(e.generations for e in entries)),
        (CI_NOTE, any(e.ci(name, "auroc") for e in entries for name, _ in table.sets)),
        (SIGNIFICANCE_NOTE, bool(table.marks))) if needed]

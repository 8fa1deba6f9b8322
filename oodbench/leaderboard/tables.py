"""Tables of the leaderboard: records grouped by (source, suite, FPR95 convention), ranked rows,
metric columns in display order and the best value of each column."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from oodbench.leaderboard.compare import Marks, mark_rows
from oodbench.leaderboard.records import Entry, source_of

GROUP_ORDER = ("near", "far")
SOURCES = (("offline", "Offline suites (mini world)"), ("real", "Real suites"))


@dataclass
class Table:
    """Measured rows of one source x suite x FPR95 convention."""

    source: str
    suite: str
    convention: str
    entries: list[Entry]
    sets: list[tuple[str, str]] = field(default_factory=list)  # (OOD set, group)
    groups: list[str] = field(default_factory=list)
    stand_ins: bool = False  # rows that replaced a paper setting: never ranked with the rest
    marks: Marks = field(default_factory=Marks)  # rows vs the best baseline (compare.py)

    @property
    def title(self) -> str:
        title = f"{self.suite} · FPR95 convention: {self.convention}"
        return f"{title} · with stand-ins (not the papers' settings)" if self.stand_ins else title

    @property
    def anchor(self) -> str:
        extra = "-stand-ins" if self.stand_ins else ""
        return "".join(c if c.isalnum() else "-" for c in f"{self.source}-{self.suite}-"
                       f"{self.convention}{extra}").lower()


@dataclass
class Leaderboard:
    tables: list[Table]
    skipped: list[tuple[str, str]]  # (file name, reason)
    reported: list[dict[str, Any]]


def make_tables(entries: Iterable[Entry]) -> list[Table]:
    """Group entries by (source, suite, convention); order sets, groups and rows."""
    buckets: dict[tuple[str, str, str, bool], list[Entry]] = {}
    for entry in entries:
        rec = entry.record
        key = (source_of(rec), rec["suite"]["name"], rec["fpr_convention"],
               bool(entry.substitutions))
        buckets.setdefault(key, []).append(entry)
    order = {name: i for i, (name, _) in enumerate(SOURCES)}
    tables = []
    for key in sorted(buckets, key=lambda k: (order[k[0]], *k[1:])):
        rows = sorted(buckets[key], key=_rank_key)
        table = Table(*key[:3], rows, stand_ins=key[3])
        table.sets = _ood_sets(rows)
        table.groups = _ordered({g for _, g in table.sets})
        table.marks = mark_rows(rows, [name for name, _ in table.sets])
        tables.append(table)
    return tables


def _rank_key(entry: Entry) -> tuple[Any, ...]:
    return (-round(entry.mean_auroc(), 6), entry.method, entry.backbone, entry.file)


def _ordered(groups: set[str]) -> list[str]:
    return sorted(groups, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 9, g))


def _ood_sets(entries: list[Entry]) -> list[tuple[str, str]]:
    """Every OOD set of the table: by group (near, far, others), then first appearance."""
    seen: dict[str, tuple[int, str]] = {}
    for entry in sorted(entries, key=lambda e: e.file):
        for name, m in entry.record["metrics"].items():
            if name not in seen:
                seen[name] = (len(seen), str(m.get("group", "")))
    groups = _ordered({g for _, g in seen.values()})
    return [(name, group) for name, (_, group) in
            sorted(seen.items(), key=lambda kv: (groups.index(kv[1][1]), kv[1][0]))]

@dataclass(frozen=True)
class Column:
    """One metric column: ``label`` (OOD set or "near avg"), metric key, how to read it."""

    label: str
    group: str
    metric: str  # "fpr95", "auroc" or "id_accuracy"
    get: Callable[[Entry], float | None]
    std: Callable[[Entry], float | None] = lambda _: None  # over generations, if any
    ci: Callable[[Entry], tuple[float, float] | None] = lambda _: None  # bootstrap 95 %
    summary: bool = False  # a group average or ID acc: what the landing page shows

    @property
    def lower_is_better(self) -> bool:
        return self.metric == "fpr95"


def columns(table: Table) -> list[Column]:
    """Metric columns in display order: FPR95 and AUROC per set, per group average, ID acc."""
    cols = []
    for name, group in table.sets:
        for key in ("fpr95", "auroc"):
            cols.append(Column(name, group, key, partial(Entry.metric, ood_set=name, key=key),
                               partial(Entry.std, section="metrics", name=name, key=key),
                               partial(Entry.ci, ood_set=name, key=key)))
    for group in table.groups:
        for key in ("fpr95", "auroc"):
            cols.append(Column(f"{group} avg", group, key,
                               partial(Entry.group, group=group, key=key),
                               partial(Entry.std, section="groups", name=group, key=key),
                               summary=True))
    cols.append(Column("ID acc", "", "id_accuracy", Entry.id_accuracy, Entry.std_id_accuracy,
                       summary=True))
    return cols


def best_cells(table: Table) -> set[tuple[int, int]]:
    """(row, column) of the best value per metric column (ties all marked; as displayed)."""
    best = set()
    for c, col in enumerate(columns(table)):
        values = {r: round(100 * v, 2) for r, e in enumerate(table.entries)
                  if (v := col.get(e)) is not None}
        if len(set(values.values())) < 2:  # one row, or all equal: nothing stands out
            continue
        target = min(values.values()) if col.lower_is_better else max(values.values())
        best |= {(r, c) for r, v in values.items() if v == target}
    return best


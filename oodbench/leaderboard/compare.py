"""Each row against the best baseline of its table: a paired bootstrap over the same images.

The baseline of a table is its best-ranked row whose method is one of the core baselines
(:data:`BASELINES`) and whose record has per-image scores; every other row with scores of the
same images is compared with it by :func:`oodbench.significance.paired_bootstrap` on the
table's mean AUROC (its ranking key). A row is called better or worse only when the 95 %
interval of the difference excludes 0. Tables without scores get no marks.
"""

from __future__ import annotations

from dataclasses import dataclass

from oodbench.errors import RecordError
from oodbench.leaderboard.records import Entry
from oodbench.significance import RESAMPLES, Comparison, paired_bootstrap

# the built-in baselines (oodbench.baselines) a new method is measured against
BASELINES = ("msp", "maxlogit", "energy", "mcm", "gl-mcm", "neglabel", "csp", "clipn")
SEED = 0


@dataclass(frozen=True)
class Marks:
    """The baseline row (index into the table's rows) and each compared row's comparison."""

    baseline: int | None = None
    rows: dict[int, Comparison] | None = None

    def __bool__(self) -> bool:
        return bool(self.rows)


def baseline_row(entries: list[Entry]) -> int | None:
    """Index of the best-ranked core-baseline row with per-image scores (None: there is none).
    ``entries`` are in rank order."""
    return next((r for r, e in enumerate(entries)
                 if e.method in BASELINES and e.scores is not None), None)


def mark_rows(entries: list[Entry], sets: list[str]) -> Marks:
    """Compare every row that has scores of all ``sets`` with the baseline row."""
    base = baseline_row(entries)
    reference = entries[base].scores if base is not None else None
    if reference is None or not all(s in reference.ood for s in sets):
        return Marks()
    rows = {}
    for r, entry in enumerate(entries):
        if r == base or entry.scores is None or not all(s in entry.scores.ood for s in sets):
            continue
        try:
            rows[r] = paired_bootstrap(entry.scores, reference, sets, RESAMPLES, SEED)
        except RecordError:  # other images (another suite version): not comparable
            continue
    return Marks(base, rows) if rows else Marks()

"""How precisely the offline suites measure AUROC: bootstrap 95 % interval widths.

    python benchmarks/offline_ci_widths.py [--results leaderboard/results] [--method mcm]
                                           [--against energy]

For each offline suite, from the committed per-image scores (``<record>.scores.npz``): the image
counts, the width of each OOD set's AUROC interval for ``--method`` (in AUROC points), the width
of its mean AUROC's interval, and the width of the paired interval of the mean-AUROC difference
``--method`` minus ``--against`` (same images resampled for both: the interval the leaderboard's
significance marks use). A difference is resolvable when it exceeds about half a width.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from oodbench.significance import ScoreSet, auroc_intervals, paired_bootstrap, read_scores

SUITES = ("offline-far", "offline-near", "offline-fine")


def _points(low: float, high: float) -> float:
    return round(100 * (high - low), 1)


def _mean_width(scores: ScoreSet) -> float:
    """Width of the mean AUROC's interval: the paired bootstrap of a run against a constant."""
    constant = ScoreSet(np.zeros_like(scores.id), {k: np.zeros_like(v)
                                                    for k, v in scores.ood.items()})
    c = paired_bootstrap(scores, constant)
    return _points(c.low, c.high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("leaderboard/results"))
    parser.add_argument("--method", default="mcm")
    parser.add_argument("--against", default="energy")
    args = parser.parse_args()
    for suite in SUITES:
        path = args.results / f"{args.method}--{suite}--mini.scores.npz"
        scores = read_scores(path)
        sizes = ", ".join(f"{k} {v.shape[1]}" for k, v in sorted(scores.ood.items()))
        print(f"{suite}: ID {scores.id.shape[1]} images; OOD {sizes}")
        widths = {k: _points(*iv) for k, iv in auroc_intervals(scores).items()}
        print(f"  {args.method} per-set AUROC 95% width (points): "
              + ", ".join(f"{k} {w}" for k, w in widths.items()))
        print(f"  {args.method} mean AUROC 95% width: {_mean_width(scores)}")
        other = read_scores(args.results / f"{args.against}--{suite}--mini.scores.npz")
        c = paired_bootstrap(scores, other)
        print(f"  paired {args.method} - {args.against}: {100 * c.delta:+.2f} points, "
              f"95% [{100 * c.low:+.2f}, {100 * c.high:+.2f}], width {_points(c.low, c.high)}")


if __name__ == "__main__":
    main()

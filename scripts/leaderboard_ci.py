#!/usr/bin/env python3
"""Re-run every method on the offline suites and check the committed leaderboard against it.

    python scripts/leaderboard_ci.py [--update] [--tolerance 0.005] [--methods a,b] [--suites x]
                                     [--skip c,d]

1. runs every registered method on every suite named ``offline-*`` (CPU, float32, the suite's
   backbone or the one the method names for it, the shared feature cache),
   writing fresh records to a temporary folder; a method whose data or model is missing is
   skipped with the reason;
2. compares each fresh record with the committed one in ``leaderboard/results/``: AUROC, FPR95,
   AUPR-In/Out per OOD set and ID accuracy within ``--tolerance`` (absolute; CPU float
   differences between machines), FPR95 within the larger of that and ``--fpr95-images`` OOD
   images of the set, and exactly the suite hash, backbone fingerprint and method parameters;
   lists every difference and every committed record that is missing or extra;
3. checks that the committed README.md, index.html and suite pages are what the committed
   records generate.

Exit 1 on any difference. ``--update`` instead replaces the committed records in scope with the
fresh ones (and removes stale ones), then rebuilds the leaderboard. Records outside the scope
(other suites, other backbones, the openood convention) are never touched or compared.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = ("auroc", "fpr95", "aupr_in", "aupr_out")
NOT_INSTALLED = {"top2-margin": "the example plugin is not installed "
                                "(pip install -e plugins/example)"}


@dataclass
class Outcome:
    """What happened to one method x suite pair."""

    method: str
    suite: str
    status: str  # ok | differs | new | skipped | error
    seconds: float = 0.0
    detail: str = ""
    record: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    path: Path | None = None  # where the fresh record was written (its scores sidecar beside it)


def suite_backbones(registry: Any, suites: Iterable[str]) -> dict[str, str]:
    """Each suite's own backbone (its file's ``backbone``, else mini)."""
    from oodbench.runner import resolve_suite

    return {s: resolve_suite(registry, s).backbone or "mini" for s in suites}


def plan(registry: Any, methods: set[str] | None, suites: set[str] | None,
         skip: set[str] | None = None) -> tuple[list[tuple[str, str, str]], list[Outcome]]:
    """(method, suite, backbone) to run, and the pairs skipped up front (with the reason)."""
    from oodbench.runner import resolve_method

    suite_names = [s for s in registry.names("suite")
                   if s.startswith("offline-") and (suites is None or s in suites)]
    method_names = [m for m in registry.names("method") if methods is None or m in methods]
    skipped = [Outcome(m, s, "skipped", detail=reason) for m, reason in NOT_INSTALLED.items()
               if m not in method_names and (methods is None or m in methods)
               for s in suite_names]
    skipped += [Outcome(m, s, "skipped", detail="--skip") for m in sorted(skip or ())
                if m in method_names for s in suite_names]
    defaults = suite_backbones(registry, suite_names)
    specs = {m: resolve_method(registry, m) for m in method_names if m not in (skip or ())}
    pairs = [(m, s, spec.backbone_for(defaults[s])) for s in suite_names
             for m, spec in specs.items()]
    return pairs, skipped


def run_all(pairs: list[tuple[str, str, str]], registry: Any, out: Path) -> list[Outcome]:
    """Run every pair; missing data or models skip a pair, any other failure is an error."""
    import torch

    from oodbench.errors import MissingDataError, OfflineError
    from oodbench.paths import cache_dir
    from oodbench.runner import RunRequest, run
    from oodbench.types import RunContext

    ctx = RunContext(device=torch.device("cpu"), dtype=torch.float32, cache_dir=cache_dir(),
                     seed=0, batch_size=256, num_workers=RunContext.default_workers())
    outcomes = []
    for method, suite, backbone in pairs:
        start = time.perf_counter()
        print(f"run {method} on {suite} ({backbone})", flush=True)
        try:
            record = run(RunRequest(method, suite, backbone=backbone, output_dir=out), ctx,
                         registry, log=lambda msg: print(f"    {msg}", flush=True))
        except (MissingDataError, OfflineError) as exc:
            outcomes.append(Outcome(method, suite, "skipped", detail=str(exc)))
            print(f"  skipped: {exc}", flush=True)
            continue
        except Exception as exc:  # report every failing method, then fail the whole run
            outcomes.append(Outcome(method, suite, "error", detail=f"{type(exc).__name__}: "
                                                                   f"{exc}"))
            print(f"  error: {type(exc).__name__}: {exc}", flush=True)
            continue
        path = record.pop("path", None)
        outcomes.append(Outcome(method, suite, "ok", time.perf_counter() - start,
                                record=record, path=Path(path) if path else None))
    return outcomes


def compare_record(fresh: dict[str, Any], committed: dict[str, Any],
                   tolerance: float, fpr95_images: int = 2) -> list[str]:
    """Differences between two records of the same method x suite x backbone.

    FPR95 is a threshold count: the last-bit float differences between CPUs (e.g. AVX2 and
    AVX-512 kernels; measured between two machines) move an OOD image or two across the
    95 %-TPR threshold, i.e. 1/n of the set each, more than ``tolerance`` on small sets."""
    problems = []
    ood_counts = committed.get("counts", {}).get("ood", {})
    for name in sorted(set(fresh["metrics"]) | set(committed["metrics"])):
        new, old = fresh["metrics"].get(name), committed["metrics"].get(name)
        if new is None or old is None:
            where = "committed" if new is None else "fresh"
            problems.append(f"OOD set {name!r} only in the {where} record")
            continue
        n_ood = ood_counts.get(name, 0)
        for key in METRIC_KEYS:
            allowed = tolerance
            if key == "fpr95" and n_ood:
                allowed = max(tolerance, fpr95_images / n_ood + 1e-9)
            problems.append(_delta(f"{name}.{key}", new.get(key), old.get(key), allowed))
    problems.append(_delta("id_accuracy", fresh["id_accuracy"], committed["id_accuracy"],
                           tolerance))
    exact = {"suite hash": lambda r: r["suite"].get("hash"),
             "backbone fingerprint": lambda r: r["backbone"].get("fingerprint"),
             "method parameters": lambda r: json.dumps(r.get("params"), sort_keys=True)}
    for label, get in exact.items():
        if get(fresh) != get(committed):
            problems.append(f"{label} changed: committed {str(get(committed))[:60]!r}, "
                            f"now {str(get(fresh))[:60]!r}")
    return [p for p in problems if p]


def _delta(label: str, new: Any, old: Any, tolerance: float) -> str:
    if not isinstance(new, int | float) or not isinstance(old, int | float):
        return f"{label}: committed {old!r}, now {new!r}"
    if abs(new - old) > tolerance:
        return f"{label}: committed {old:.4f}, now {new:.4f} (|Δ| {abs(new - old):.4f} > " \
               f"{tolerance:.4g})"
    return ""


def committed_in_scope(results: Path, scope: dict[tuple[str, str], str],
                       defaults: dict[str, str]
                       ) -> tuple[dict[tuple[str, str], list[Path]], list[str]]:
    """Committed records that CI reproduces, by (method, suite); and problems with files.
    A method that did not run (a stale record) counts on its suite's ``defaults`` backbone."""
    from oodbench.leaderboard import load_entries

    found: dict[tuple[str, str], list[Path]] = {}
    if not results.is_dir():
        return found, []
    entries, invalid = load_entries(results)
    in_scope = {suite for _, suite in scope}
    for entry in entries:
        rec = entry.record
        suite = rec["suite"]["name"]
        wanted = scope.get((entry.method, suite)) or defaults.get(suite)
        if suite in in_scope and wanted == entry.backbone and rec["fpr_convention"] == "paper":
            found.setdefault((entry.method, suite), []).append(results / entry.file)
    return found, [f"{name}: invalid committed record ({why})" for name, why in invalid]


def compare(outcomes: list[Outcome], results: Path, scope: dict[tuple[str, str], str],
            defaults: dict[str, str], tolerance: float, methods: set[str] | None = None,
            fpr95_images: int = 2) -> list[str]:
    """Set each outcome's status; return the problems (differences, missing, extra, invalid)."""
    committed, problems = committed_in_scope(results, scope, defaults)
    ran = {(o.method, o.suite): o for o in outcomes}
    for key, outcome in sorted(ran.items()):
        paths = committed.get(key, [])
        if outcome.record is None:
            continue
        if not paths:
            outcome.status = "new"
            problems.append(f"{key[0]} on {key[1]}: no committed record (run with --update)")
            continue
        if len(paths) > 1:
            problems.append(f"{key[0]} on {key[1]}: several committed records: "
                            + ", ".join(p.name for p in paths))
        old = json.loads(paths[0].read_text(encoding="utf-8"))
        outcome.problems = compare_record(outcome.record, old, tolerance, fpr95_images)
        outcome.status = "differs" if outcome.problems else "ok"
        problems += [f"{paths[0].name}: {p}" for p in outcome.problems]
    for key, paths in sorted(committed.items()):
        if key not in ran and (methods is None or key[0] in methods):
            problems += [f"{p.name}: extra committed record (no registered method "
                         f"{key[0]!r} on {key[1]!r}; remove it or run with --update)"
                         for p in paths]
    return problems


def dirty_records(results: Path) -> list[str]:
    """Committed records written from a working tree with uncommitted changes: their
    ``git_revision`` does not name the code that produced them."""
    from oodbench.leaderboard import load_entries

    if not results.is_dir():
        return []
    entries, _ = load_entries(results)
    return [f"{e.file}: written from a dirty tree ({e.record['environment'].get('git_revision')})"
            f"; regenerate it from a clean checkout" for e in entries
            if str(e.record["environment"].get("git_revision") or "").endswith("+dirty")]


def update(outcomes: list[Outcome], results: Path, scope: dict[tuple[str, str], str],
           defaults: dict[str, str], methods: set[str] | None = None) -> None:
    """Replace the committed records in scope with the fresh ones (with their per-image scores
    sidecars, where the run wrote one); remove stale ones."""
    import shutil

    from oodbench.results import write_record
    from oodbench.significance import scores_path

    committed, _ = committed_in_scope(results, scope, defaults)
    ran = {(o.method, o.suite) for o in outcomes}
    for outcome in outcomes:
        if outcome.record is None:
            continue
        target = write_record(outcome.record, results)
        fresh = scores_path(outcome.path) if outcome.path else None
        if fresh is not None and fresh.exists():
            shutil.copyfile(fresh, scores_path(target))
        else:
            scores_path(target).unlink(missing_ok=True)
        for path in committed.get((outcome.method, outcome.suite), []):
            if path != target:
                path.unlink()
                scores_path(path).unlink(missing_ok=True)
    for key, paths in sorted(committed.items()):
        if key not in ran and (methods is None or key[0] in methods):
            for path in paths:
                print(f"remove stale record {path.name}")
                path.unlink()
                scores_path(path).unlink(missing_ok=True)


def summary(outcomes: list[Outcome]) -> str:
    """A plain-text table: suite, method, status, mean AUROC, seconds, note."""
    rows = [("suite", "method", "status", "mean AUROC", "seconds", "note")]
    for o in sorted(outcomes, key=lambda o: (o.suite, o.method)):
        auroc = seconds = ""
        if o.record:
            values = [m["auroc"] for m in o.record["metrics"].values()]
            auroc, seconds = f"{100 * sum(values) / len(values):.2f}", f"{o.seconds:.1f}"
        note = o.problems[0] if o.problems else o.detail
        note = note if len(note) <= 70 else note[:67] + "..."
        rows.append((o.suite, o.method, o.status, auroc, seconds, note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i in (3, 4) else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                     for r in rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true",
                        help="rewrite the committed records and the leaderboard")
    parser.add_argument("--tolerance", type=float, default=0.005,
                        help="absolute tolerance on metrics (fractions), default 0.005")
    parser.add_argument("--fpr95-images", type=int, default=2,
                        help="FPR95 may also differ by this many OOD images of a set (CPU "
                             "float differences move images across the threshold), default 2")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="accept records written from a tree with uncommitted changes "
                             "(experiments; never for the committed leaderboard)")
    parser.add_argument("--results", type=Path, default=REPO / "leaderboard" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "leaderboard")
    parser.add_argument("--methods", help="comma-separated subset of methods")
    parser.add_argument("--suites", help="comma-separated subset of offline-* suites")
    parser.add_argument("--skip", help="comma-separated methods not to run (their committed "
                                       "records are kept and not compared)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, registry: Any = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    sys.path.insert(0, str(REPO))
    from oodbench import leaderboard
    from oodbench.errors import OODBenchError
    from oodbench.plugins import get_registry

    registry = registry or get_registry()
    subset = {s: set(getattr(args, s).split(",")) if getattr(args, s) else None
              for s in ("methods", "suites", "skip")}
    pairs, outcomes = plan(registry, subset["methods"], subset["suites"], subset["skip"])
    for o in outcomes:
        print(f"skip {o.method} on {o.suite}: {o.detail}")
    scope = {(m, s): b for m, s, b in pairs}
    defaults = suite_backbones(registry, {s for _, s in scope})
    reported = leaderboard.default_reported(args.results)
    with tempfile.TemporaryDirectory(prefix="oodbench-leaderboard-") as tmp:
        outcomes += run_all(pairs, registry, Path(tmp))
        problems = [f"{o.method} on {o.suite}: {o.detail}" for o in outcomes
                    if o.status == "error"]
        if not any(o.record for o in outcomes):
            problems.append("no method ran: fetch the offline data (`oodbench data "
                            "fetch-offline`) and the mini backbone weights")
        if args.update and not problems:  # while the fresh scores sidecars still exist
            update(outcomes, args.results, scope, defaults, subset["methods"])
            leaderboard.build(args.results, args.out, reported)
    problems += compare(outcomes, args.results, scope, defaults, args.tolerance,
                        subset["methods"], args.fpr95_images)
    if not args.allow_dirty:
        problems += dirty_records(args.results)
    try:
        problems += leaderboard.check(args.results, args.out, reported)[1]
    except OODBenchError as exc:
        problems.append(str(exc))
    print("\n" + summary(outcomes))
    for problem in problems:
        print(f"FAIL {problem}")
    verdict = "FAILED" if problems else "ok"
    print(f"\nleaderboard CI {verdict}: {len(problems)} problem(s), "
          f"total {time.perf_counter() - start:.1f}s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Result records as the leaderboard reads them: loading, validation and published numbers.

Every ``*.json`` of the results folder is read and checked with
:func:`oodbench.results.validate_record`; an invalid file is kept as (file name, one-line
reason) and never averaged into a table. A record's per-image scores (the sidecar
``<stem>.scores.npz`` of :mod:`oodbench.significance`) are read when present and must give the
record's AUROCs; a sidecar that does not is listed the same way and not used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodbench.errors import OODBenchError, RecordError
from oodbench.results import validate_record, weights_tag
from oodbench.significance import ScoreSet, auroc_intervals, read_scores, scores_path
from oodbench.standins import substitution_tag


@dataclass(frozen=True)
class Entry:
    """One valid record and the file it came from."""

    file: str
    record: dict[str, Any]
    scores: ScoreSet | None = field(default=None, compare=False, repr=False)
    intervals: dict[str, tuple[float, float]] | None = field(default=None, compare=False,
                                                             repr=False)

    @property
    def method(self) -> str:
        return str(self.record["method"])

    @property
    def substitutions(self) -> dict[str, Any]:
        """Paper settings a real run replaced by stand-ins (empty: the paper's setting)."""
        subs = self.record.get("substitutions")
        return subs if isinstance(subs, dict) else {}

    @property
    def label(self) -> str:
        """The method's name, marked with its stand-ins, e.g. "synood · mini-diffusion"."""
        if not self.substitutions:
            return self.method
        return f"{self.method} · {substitution_tag(self.substitutions)}"

    @property
    def backbone(self) -> str:
        """The backbone's name; a ``--weights`` run's says which, e.g. "clip-b16 (weights
        a1b2c3d4)" (the first hex digits of the file's sha256)."""
        weights = weights_tag(self.record["backbone"])
        name = str(self.record["backbone"]["name"])
        return f"{name} (weights {weights})" if weights else name

    def metric(self, ood_set: str, key: str) -> float | None:
        value = self.record["metrics"].get(ood_set, {}).get(key)
        return float(value) if isinstance(value, int | float) else None

    def ci(self, ood_set: str, key: str) -> tuple[float, float] | None:
        """The bootstrap 95 % interval of ``key`` on ``ood_set``: the record's (``oodbench run
        --bootstrap``), else, for AUROC, one from the per-image scores; None without either."""
        interval = (self.record["metrics"].get(ood_set, {}).get("ci") or {}).get(key)
        if isinstance(interval, list) and len(interval) == 2:
            return float(interval[0]), float(interval[1])
        if key == "auroc" and self.scores is not None:
            return self._auroc_intervals().get(ood_set)
        return None

    def _auroc_intervals(self) -> dict[str, tuple[float, float]]:
        if self.intervals is None and self.scores is not None:  # computed once per entry
            object.__setattr__(self, "intervals", auroc_intervals(self.scores))
        return self.intervals or {}

    def group(self, group: str, key: str) -> float | None:
        averages = self.record["groups"].get(group)
        value = averages.get(key) if isinstance(averages, dict) else None
        return float(value) if isinstance(value, int | float) else None

    def mean_auroc(self) -> float:
        values = [m["auroc"] for m in self.record["metrics"].values()]
        return sum(values) / len(values)

    @property
    def generations(self) -> dict[str, Any] | None:
        """The record's ``generations`` block when it averages N > 1 generations."""
        block = self.record.get("generations")
        return block if isinstance(block, dict) and block.get("n", 1) > 1 else None

    def std(self, section: str, name: str, key: str) -> float | None:
        """Std over generations of ``metrics``/``groups`` [name][key] (None: one generation)."""
        block = self.generations
        if block is None:
            return None
        value = block["std"].get(section, {}).get(name, {}).get(key)
        return float(value) if isinstance(value, int | float) else None

    def id_accuracy(self) -> float:
        return float(self.record["id_accuracy"])

    def std_id_accuracy(self) -> float | None:
        block = self.generations
        value = block["std"].get("id_accuracy") if block else None
        return float(value) if isinstance(value, int | float) else None


def load_entries(results_dir: Path) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Valid records of ``results_dir/*.json`` and (file name, reason) for every invalid one.

    Each record is checked with :func:`oodbench.results.validate_record` (the published record
    schema); the reason is its one line (the field and the fix) without the file name."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise OODBenchError(f"Results folder {results_dir} does not exist; pass --results DIR "
                            f"or write records there with `oodbench run -o {results_dir}`.")
    entries, skipped = [], []
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            skipped.append((path.name, f"not readable JSON ({type(exc).__name__}); fix or "
                                       f"remove the file"))
            continue
        reason = invalid_reason(data, path.name)
        if reason:
            skipped.append((path.name, reason))
            continue
        scores, problem = _scores(path, data)
        if problem:
            skipped.append((scores_path(path).name, problem))
        entries.append(Entry(path.name, data, scores))
    return entries, skipped


def _scores(path: Path, record: dict[str, Any]) -> tuple[ScoreSet | None, str | None]:
    """The record's per-image scores (None without a sidecar) or why the sidecar is unusable."""
    sidecar = scores_path(path)
    if not sidecar.exists():
        return None, None
    try:
        scores = read_scores(sidecar)
    except RecordError as exc:
        return None, str(exc).removeprefix(f"{sidecar.name}: ").removeprefix(f"{sidecar.name} ")
    return (None, problem) if (problem := scores_problem(scores, record)) else (scores, None)


def scores_problem(scores: ScoreSet, record: dict[str, Any]) -> str | None:
    """Why ``scores`` are not the ones ``record`` was computed from (None: they are)."""
    fix = "rewrite them with `oodbench run` or remove them"
    block = record.get("generations") or {}
    if scores.generations != int(block.get("n", 1)):
        return f"holds {scores.generations} generation(s), the record {block.get('n', 1)}; {fix}"
    if set(scores.ood) != set(record["metrics"]):
        return f"names OOD sets {sorted(scores.ood)}, the record {sorted(record['metrics'])}; {fix}"
    for name, metrics in sorted(record["metrics"].items()):
        counts = [metrics.get("n_id"), metrics.get("n_ood")]
        if counts != [None, None] and counts != [scores.id.shape[1], scores.ood[name].shape[1]]:
            return f"holds other images of {name} than the record ({counts}); {fix}"
        if abs(scores.auroc(name) - float(metrics["auroc"])) > 1e-6:
            return (f"give AUROC {scores.auroc(name):.6f} on {name}, the record "
                    f"{float(metrics['auroc']):.6f}; {fix}")
    return None


def invalid_reason(data: Any, name: str) -> str | None:
    """Why ``data`` (the file ``name``) is not a valid record, in one line; None when valid."""
    try:
        validate_record(data, name)
    except RecordError as exc:
        return str(exc).removeprefix(f"Result record {name}: ")
    return None


def source_of(record: dict[str, Any]) -> str:
    """The record's ``source``; records written before the field existed: by suite name."""
    return record.get("source") or ("offline" if record["suite"]["name"].startswith("offline-")
                                    else "real")


def load_reported(path: Path | None) -> list[dict[str, Any]]:
    """Tables of published numbers from ``reported.yaml`` (none if the file is absent)."""
    if path is None or not Path(path).exists():
        return []
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise OODBenchError(f"{path} is not valid YAML ({exc.__class__.__name__}); "
                            f"fix the file or delete it.") from None
    tables = data.get("tables") if isinstance(data, dict) else None
    if not isinstance(tables, list) or not all(_reported_ok(t) for t in tables):
        raise OODBenchError(f"{path} must hold `tables:`, each with title, source, columns and "
                            f"rows (method, values: column -> [FPR95, AUROC]); fix the file.")
    return tables


def _reported_ok(table: Any) -> bool:
    return (isinstance(table, dict) and all(k in table for k in ("title", "source", "columns",
                                                                   "rows"))
            and all(isinstance(r, dict) and "method" in r for r in table["rows"]))


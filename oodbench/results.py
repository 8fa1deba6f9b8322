"""The result record: one JSON file per (method, suite, backbone) run, with full provenance.

Schema ``oodbench.result/1`` (all metric values are fractions in [0, 1]):

* ``method``: name; ``method_spec``: the composition; ``params``: component -> parameters
* ``suite``: name, version, hash (of the resolved suite file), task
* ``backbone``: name, parameters, fingerprint (weights + preprocessing)
* ``metrics``: OOD set -> {group, auroc, fpr95, aupr_in, aupr_out, n_id, n_ood[, ci]}
* ``groups``: near / far -> unweighted means over the group's sets
* ``id_accuracy``, ``fpr_convention`` ("paper" or "openood"), ``source`` ("offline" | "real")
* ``counts``: images per set and images skipped as unreadable (with a few examples)
* ``timings``: seconds per stage (encode, labels, synthesize, finetune, prepare, score, total)
* ``curves``: per set, score histograms (ID vs OOD) and a down-sampled ROC curve, for plots
* ``environment``: versions, git revision, device, dtype; ``seed``; ``created`` (UTC)

Records are written atomically and only once the whole run has succeeded.
"""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.cache import atomic_write_text
from oodbench.paths import REPO_ROOT

SCHEMA = "oodbench.result/1"
REQUIRED = ("schema", "method", "suite", "backbone", "metrics", "groups", "id_accuracy",
            "fpr_convention", "params", "environment", "seed", "created", "timings")


def record_filename(method: str, suite: str, backbone: str) -> str:
    safe = [s.replace("/", "_").replace(":", "_") for s in (method, suite, backbone)]
    return "--".join(safe) + ".json"


def write_record(record: dict[str, Any], output_dir: Path) -> Path:
    path = Path(output_dir) / record_filename(
        record["method"], record["suite"]["name"], record["backbone"]["name"]
    )
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=False) + "\n")
    return path


def validate_record(data: Any) -> list[str]:
    """Problems that make a record unusable (empty list = valid)."""
    if not isinstance(data, dict):
        return ["not a JSON object"]
    problems = [f"missing field {k!r}" for k in REQUIRED if k not in data]
    if data.get("schema") != SCHEMA:
        problems.append(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    for name, m in (data.get("metrics") or {}).items():
        for key in ("auroc", "fpr95"):
            value = m.get(key) if isinstance(m, dict) else None
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                problems.append(f"metrics[{name!r}].{key} is not a number in [0, 1]")
    return problems


def environment(device: str, dtype: str) -> dict[str, Any]:
    versions = {}
    for dist in ("torch", "open_clip_torch", "numpy", "scikit-learn", "transformers",
                 "diffusers", "pluggy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    from oodbench import __version__

    return {
        "oodbench": __version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "libraries": versions,
        "device": device,
        "dtype": dtype,
    }


def git_revision() -> str | None:
    """The oodbench checkout's commit (with "+dirty" when modified), if it is a git checkout."""
    if not (REPO_ROOT / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def curves(id_scores: np.ndarray, ood_scores: np.ndarray, bins: int = 40) -> dict[str, Any]:
    """Compact plot data: shared-bin histograms and a ROC curve with at most ~100 points."""
    from sklearn.metrics import roc_curve

    both = np.concatenate([id_scores, ood_scores])
    lo, hi = float(both.min()), float(both.max())
    if hi <= lo:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    y = np.concatenate([np.ones(len(id_scores)), np.zeros(len(ood_scores))])
    fpr, tpr, _ = roc_curve(y, both)
    step = max(1, len(fpr) // 100)
    keep = np.unique(np.r_[np.arange(0, len(fpr), step), len(fpr) - 1])
    return {
        "edges": [round(float(e), 6) for e in edges],
        "id_hist": np.histogram(id_scores, edges)[0].tolist(),
        "ood_hist": np.histogram(ood_scores, edges)[0].tolist(),
        "roc_fpr": [round(float(v), 5) for v in fpr[keep]],
        "roc_tpr": [round(float(v), 5) for v in tpr[keep]],
    }

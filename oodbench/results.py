"""The result record: one JSON file per (method, suite, backbone) run, with full provenance.

Schema ``oodbench.result/1`` (all metric values are fractions in [0, 1]):

* ``method``: name; ``method_spec``: the composition; ``params``: component -> parameters
* ``suite``: name, version, hash (of the resolved suite file), task
* ``overrides`` (only when ``-p`` or ``--seeds`` was given): the overrides as given (``--seeds``
  under that key); the file name then ends in
  ``--p<first 8 hex digits of their hash>.json``
* ``substitutions`` (records of real suites): ``component.parameter`` -> value for every paper
  setting the run replaced by a stand-in (empty: the paper's setting)
* ``backbone``: name, parameters, fingerprint (weights + preprocessing)[, preprocessing:
  {interpolation (the resize filter that ran), chosen_by} for backbones with that choice]
  [, weights: the ``--weights`` identity, e.g. {path, sha256, tag} (open_clip file) or
  {path, sha256, files} (transformers folder); only for runs with ``--weights``, whose file
  name then ends in ``--w<first 8 hex digits>.json``]
* ``metrics``: OOD set -> {group, auroc, fpr95, aupr_in, aupr_out, n_id, n_ood[, ci]}
* ``groups``: near / far -> unweighted means over the group's sets
* ``id_accuracy``, ``fpr_convention`` ("paper" or "openood"), ``source`` ("offline" | "real")
* ``generations`` (only when the run averaged N > 1 seeds, see :mod:`oodbench.seeds`: stochastic
  methods on the offline suites, ``--seeds N``, a label generator's ``generations``):
  ``metrics``, ``groups`` and ``id_accuracy`` above are then the MEANS over the generations, and
  this block holds ``n``; ``seeds`` (run seed + 0..N-1); ``label_sets`` (per generation, the
  index of its distinct set of scores: equal label banks share one, unless a component has a
  ``seed`` parameter of its own) and
  ``distinct_label_sets``; ``std_ddof`` (1: sample standard deviation); ``per_generation``: per
  generation {seed, label_set, labels (count), id_accuracy, metrics: set -> {auroc, fpr95,
  aupr_in, aupr_out[, ci]}, groups: group -> {auroc, fpr95, aupr_in, aupr_out}}; ``std``:
  {metrics: set -> {auroc, fpr95, aupr_in, aupr_out}, groups: group -> {...}, id_accuracy}.
  Top-level ``ci`` is left out then (bootstrap intervals are per generation); ``curves``,
  ``labels`` and ``notes`` are generation 0's.
* ``components``: per component of the run (backbone first, then in execution order) {role,
  name, plugin, distribution, version}: the plugin that registered it; absent in records
  written before it existed
* ``counts``: images per set and images skipped as unreadable (with a few examples)
* ``timings``: seconds per stage (load_backbone, encode (images), encode_text (the ID class
  prompts), labels, synthesize, finetune, prepare, score, total)
* ``curves``: per set, score histograms (ID vs OOD) and a down-sampled ROC curve, for plots
* ``environment``: versions, git revision, device, dtype; ``seed``; ``created`` (UTC)

Records are written atomically and only once the whole run has succeeded. Beside each record,
``<stem>.scores.npz`` holds the per-image scores (one row per generation; the ID set and every
OOD set in suite order, with a key of the scored images): what the leaderboard's paired
bootstrap (:mod:`oodbench.significance`) compares two runs on.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from oodbench.cache import atomic_write_text, content_key
from oodbench.errors import RecordError
from oodbench.paths import REPO_ROOT
from oodbench.record import Record
from oodbench.validation import problems

METRIC_KEYS = ("auroc", "fpr95", "aupr_in", "aupr_out")
STD_DDOF = 1  # sample standard deviation over generations


def record_filename(method: str, suite: str, backbone: str, weights: str | None = None,
                    overrides: dict[str, Any] | None = None) -> str:
    """``<method>--<suite>--<backbone>.json``; ``--w<weights>`` for a run with ``--weights``
    (see :func:`weights_tag`) and ``--p<8 hex digits>`` for a run with ``-p`` overrides (a hash
    of them), so such runs never overwrite the default record or each other."""
    safe = [s.replace("/", "_").replace(":", "_") for s in (method, suite, backbone)]
    tags = (f"--w{weights}" if weights else "") + \
        (f"--p{content_key(overrides)[:8]}" if overrides else "")
    return "--".join(safe) + tags + ".json"


def weights_tag(backbone: dict[str, Any]) -> str | None:
    """Eight hex digits naming a record's ``--weights`` (its sha256, or a hash of the identity
    when there is none, e.g. a hub id); None for a record without ``backbone.weights``."""
    identity = backbone.get("weights") if isinstance(backbone, dict) else None
    if not identity:
        return None
    digest = identity.get("sha256") if isinstance(identity, dict) else None
    return (digest if isinstance(digest, str) and digest else content_key(identity))[:8]


def write_record(record: dict[str, Any], output_dir: Path) -> Path:
    path = Path(output_dir) / record_filename(
        record["method"], record["suite"]["name"], record["backbone"]["name"],
        weights_tag(record["backbone"]), record.get("overrides"),
    )
    try:  # a NaN or Infinity is not JSON and never a result: refuse it, write nothing
        text = json.dumps(record, indent=1, sort_keys=False, allow_nan=False) + "\n"
    except ValueError:
        from oodbench.errors import OODBenchError

        raise OODBenchError(f"The {record['method']} record holds a non-finite number (NaN or "
                            f"infinity), so it was not written; check the method's parameters "
                            f"and the images' scores.") from None
    atomic_write_text(path, text)
    return path


def record_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a result record, from :class:`oodbench.record.Record`
    (``oodbench schema record`` prints it)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            **Record.model_json_schema(by_alias=True)}


def record_problems(data: Any) -> list[str]:
    """Every reason ``data`` is not a valid record, one ``field: problem`` each ([] = valid)."""
    if not isinstance(data, Mapping):
        return [f"not a JSON object (got {type(data).__name__})"]
    try:
        Record.model_validate(dict(data))
    except ValidationError as exc:
        return problems(exc, Record)
    return []


def validate_record(data: Mapping[str, Any], source: str) -> None:
    """Raise :class:`~oodbench.errors.RecordError` (one line: ``source``, the field, the fix)
    unless ``data`` is a valid ``oodbench.result/1`` record."""
    found = record_problems(data)
    if found:
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        raise RecordError(f"Result record {source}: {found[0]}{more}; fix the field or rewrite "
                          f"the record with `oodbench run` (the format: `oodbench schema "
                          f"record`).")


def mean_std(values: Sequence[float], ddof: int = STD_DDOF) -> tuple[float, float]:
    """Mean and standard deviation (``ddof`` 1: the sample std; 0 for too few values).

    Identical values return that value itself, not a float sum divided back: a deterministic
    method's N generations then give exactly its single-run numbers.
    """
    items = [float(v) for v in values]
    if not items:
        raise ValueError("mean_std needs at least one value")
    if all(v == items[0] for v in items):
        return items[0], 0.0
    mean = math.fsum(items) / len(items)
    if len(items) <= ddof:
        return mean, 0.0
    variance = math.fsum((v - mean) ** 2 for v in items) / (len(items) - ddof)
    return mean, math.sqrt(variance)


def generation_summary(per_set: Sequence[dict[str, Any]], groups: Sequence[dict[str, Any]],
                       id_accuracy: Sequence[float], seeds: Sequence[int],
                       label_sets: Sequence[int], label_counts: Sequence[int | None]
                       ) -> tuple[dict[str, Any], dict[str, Any], float, dict[str, Any]]:
    """Means over generations for ``metrics`` / ``groups`` / ``id_accuracy``, and the
    ``generations`` block. Inputs are per generation, in order: per-set metric entries (as in
    ``metrics``), group means (as in ``groups``), ID accuracies, seeds, label-set indices and
    label counts."""
    def reduce(entries: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        means, stds = {}, {}
        for name, first in entries[0].items():
            mean_entry = {k: v for k, v in first.items() if k != "ci"}
            std_entry = {}
            for key in METRIC_KEYS:
                if key in first:
                    mean_entry[key], std_entry[key] = mean_std([e[name][key] for e in entries])
            means[name], stds[name] = mean_entry, std_entry
        return means, stds

    mean_sets, std_sets = reduce(per_set)
    mean_groups, std_groups = reduce(groups)
    mean_acc, std_acc = mean_std(id_accuracy)

    def pick(entry: dict[str, Any], keep_ci: bool) -> dict[str, Any]:
        out = {k: entry[k] for k in METRIC_KEYS if k in entry}
        if keep_ci and "ci" in entry:
            out["ci"] = entry["ci"]
        return out

    per_generation = [
        {"seed": seed, "label_set": label_set, "labels": count, "id_accuracy": acc,
         "metrics": {name: pick(m, True) for name, m in sets.items()},
         "groups": {name: pick(m, False) for name, m in grouped.items()}}
        for seed, label_set, count, acc, sets, grouped in zip(
            seeds, label_sets, label_counts, id_accuracy, per_set, groups, strict=True)]
    block = {"n": len(seeds), "seeds": list(seeds), "label_sets": list(label_sets),
             "distinct_label_sets": len(set(label_sets)), "std_ddof": STD_DDOF,
             "per_generation": per_generation,
             "std": {"metrics": std_sets, "groups": std_groups, "id_accuracy": std_acc}}
    return mean_sets, mean_groups, mean_acc, block


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
    """The oodbench checkout's commit (with "+dirty" when modified), if it is a git checkout.

    ``None`` (``null`` in the record) when oodbench is not imported from its own source checkout:
    installed from a wheel, ``REPO_ROOT`` is site-packages, with no ``.git`` or ``pyproject.toml``
    of ours beside the package; the record's ``oodbench`` version then says what ran. Also
    ``None`` when git is missing or cannot read the checkout; never raises.
    """
    if not ((REPO_ROOT / ".git").exists() and (REPO_ROOT / "pyproject.toml").is_file()):
        return None
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "") if rev else None


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

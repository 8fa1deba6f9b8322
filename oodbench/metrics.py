"""OOD-detection metrics: AUROC, FPR@95%TPR, AUPR-In/Out, ID accuracy, bootstrap CIs.

Conventions (as in the reference code of MCM, NegLabel, EOE and OpenOOD v1.5):

* A score is *higher for more in-distribution* inputs; ID is the positive class.
* All results are fractions in ``[0, 1]``; tables multiply by 100.
* AUROC is ``roc_auc_score`` with ID positive; AUPR-In is ``average_precision_score`` with ID
  positive on the scores; AUPR-Out is ``average_precision_score`` with OOD positive on the
  negated scores.
* FPR95 has two definitions that differ on finite samples, chosen with ``convention``:

  ``"paper"`` (MCM, NegLabel, CSP, EOE, SynOOD; Hendrycks' ``fpr_and_fdr_at_recall``):
      walk the ID-positive ROC over the distinct score thresholds, up to the highest threshold
      at which every ID sample is accepted; pick the point whose ID recall is nearest to 0.95
      (exact float64 distances, no interpolation). Ties go the way the reference code breaks
      them: it scans from low thresholds to high ones and keeps the first minimum, so among
      points with equally near recall the *lowest* threshold wins (e.g. with 20 ID samples,
      recall 19/20 holds down to the lowest ID score, so every OOD score above it counts).
      FPR95 is the fraction of OOD samples with score >= that threshold.
  ``"openood"`` (OpenOOD v1.5, ``auc_and_fpr_recall``):
      OOD is positive with score ``-confidence``; on ``sklearn.metrics.roc_curve`` (default
      ``drop_intermediate=True``, exactly as OpenOOD calls it) take the first point whose OOD
      recall is >= 0.95 and return its FPR, i.e. the fraction of ID samples flagged as OOD.

Degenerate inputs are well defined: if all scores are equal, AUROC is 0.5 and FPR95 is 1.0
under both conventions; a single ID or OOD sample is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from oodbench.errors import OODBenchError, UnknownNameError

FPR_CONVENTIONS: tuple[str, ...] = ("paper", "openood")
TPR_LEVEL = 0.95
METRIC_NAMES: tuple[str, ...] = ("auroc", "fpr95", "aupr_in", "aupr_out")


@dataclass(frozen=True)
class OODMetrics:
    """Detection metrics of one (ID set, OOD set) pair, as fractions in [0, 1]."""

    auroc: float
    fpr95: float
    aupr_in: float
    aupr_out: float
    n_id: int
    n_ood: int
    fpr_convention: str

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain dict of all fields (JSON-serialisable)."""
        return asdict(self)


# --------------------------------------------------------------------------- validation


def _check_convention(convention: str) -> None:
    if convention not in FPR_CONVENTIONS:
        raise UnknownNameError("FPR convention", str(convention), FPR_CONVENTIONS)


def _as_scores(values: ArrayLike, what: str) -> np.ndarray:
    """Return ``values`` as a finite, non-empty 1-D float64 array or raise ``OODBenchError``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OODBenchError(f"{what} must be real numbers ({exc}).") from None
    if arr.ndim != 1:
        raise OODBenchError(
            f"{what} must be a 1-D array of per-sample scores, got shape {arr.shape}."
        )
    if arr.size == 0:
        raise OODBenchError(f"{what} are empty; need at least one ID and one OOD score.")
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise OODBenchError(
            f"{what} contain {n_nan + n_inf} non-finite values ({n_nan} NaN, {n_inf} inf) "
            f"of {arr.size}: the scorer produced them; check the method and its parameters "
            "(e.g. a temperature that overflows or a division by zero)."
        )
    return arr


def _as_pair(id_scores: ArrayLike, ood_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    return _as_scores(id_scores, "ID scores"), _as_scores(ood_scores, "OOD scores")


# --------------------------------------------------------------------------- curve engine


class _Counts(NamedTuple):
    """Counts at each distinct score ``t`` (ascending): ``*_ge`` = score >= t, ``*_le`` <= t."""

    id_ge: np.ndarray
    ood_ge: np.ndarray
    id_le: np.ndarray
    ood_le: np.ndarray


def _counts(id_s: np.ndarray, ood_s: np.ndarray) -> _Counts:
    id_sorted, ood_sorted = np.sort(id_s), np.sort(ood_s)
    thresholds = np.unique(np.concatenate([id_sorted, ood_sorted]))
    return _Counts(
        id_ge=id_s.size - np.searchsorted(id_sorted, thresholds, side="left"),
        ood_ge=ood_s.size - np.searchsorted(ood_sorted, thresholds, side="left"),
        id_le=np.searchsorted(id_sorted, thresholds, side="right"),
        ood_le=np.searchsorted(ood_sorted, thresholds, side="right"),
    )


def _fpr95_paper(c: _Counts) -> float:
    """FPR at the ID recall nearest 0.95, ties broken towards the lowest threshold."""
    tp, fp = c.id_ge[::-1], c.ood_ge[::-1]  # thresholds descending
    n_id, n_ood = int(tp[-1]), int(fp[-1])
    recall = tp / n_id
    last = int(np.argmax(tp == n_id))  # highest threshold accepting every ID sample
    dist = np.abs(recall[: last + 1] - TPR_LEVEL)
    best = last - int(np.argmin(dist[::-1]))  # first minimum scanning from `last` upwards
    return float(fp[best] / n_ood)


def _fpr95_openood(c: _Counts) -> float:
    """OpenOOD v1.5: ID FPR at the first OOD-positive ROC point with OOD recall >= 0.95.

    Mirrors ``sklearn.metrics.roc_curve(is_ood, -conf)`` with its default
    ``drop_intermediate=True``: a point where both cumulative counts move in a straight line
    (zero second differences) is dropped before the search, as in OpenOOD.
    """
    tps, fps = c.ood_le, c.id_le  # cuts ascending = -score descending
    if tps.size > 2:
        keep = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        tps, fps = tps[keep], fps[keep]
    first = int(np.argmax(tps / tps[-1] >= TPR_LEVEL))
    return float(fps[first] / fps[-1])


def _auroc(c: _Counts) -> float:
    """Trapezoidal area under the ID-positive ROC, in exact integer arithmetic."""
    tp = np.r_[0, c.id_ge[::-1]].astype(np.int64)
    fp = np.r_[0, c.ood_ge[::-1]].astype(np.int64)
    area2 = int(np.sum(np.diff(fp) * (tp[1:] + tp[:-1])))
    return area2 / (2 * int(tp[-1]) * int(fp[-1]))


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    """Step-wise AP (sklearn's): sum over cuts of recall increase times precision."""
    recall_gain = np.diff(np.r_[0, pos]) / pos[-1]
    return float(np.sum(recall_gain * (pos / (pos + neg))))


def _fpr95(c: _Counts, convention: str) -> float:
    return _fpr95_paper(c) if convention == "paper" else _fpr95_openood(c)


def _fast_metrics(id_s: np.ndarray, ood_s: np.ndarray, convention: str) -> tuple[float, ...]:
    """(auroc, fpr95, aupr_in, aupr_out) from one set of counts; used by the bootstrap."""
    c = _counts(id_s, ood_s)
    return (
        _auroc(c),
        _fpr95(c, convention),
        _average_precision(c.id_ge[::-1], c.ood_ge[::-1]),
        _average_precision(c.ood_le, c.id_le),
    )


# --------------------------------------------------------------------------- public API


def fpr_at_95_tpr(id_scores: ArrayLike, ood_scores: ArrayLike, convention: str = "paper") -> float:
    """False-positive rate at 95% true-positive rate under ``convention`` (see module doc)."""
    _check_convention(convention)
    id_s, ood_s = _as_pair(id_scores, ood_scores)
    return _fpr95(_counts(id_s, ood_s), convention)


def ood_metrics(
    id_scores: ArrayLike, ood_scores: ArrayLike, convention: str = "paper"
) -> OODMetrics:
    """AUROC, FPR95, AUPR-In and AUPR-Out of ID vs OOD scores (higher = more ID).

    AUROC and the AUPRs come from scikit-learn itself, as in the reference code.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    _check_convention(convention)
    id_s, ood_s = _as_pair(id_scores, ood_scores)
    scores = np.r_[id_s, ood_s]
    is_id = np.r_[np.ones(id_s.size, dtype=np.int64), np.zeros(ood_s.size, dtype=np.int64)]
    return OODMetrics(
        auroc=float(roc_auc_score(is_id, scores)),
        fpr95=_fpr95(_counts(id_s, ood_s), convention),
        aupr_in=float(average_precision_score(is_id, scores)),
        aupr_out=float(average_precision_score(1 - is_id, -scores)),
        n_id=int(id_s.size),
        n_ood=int(ood_s.size),
        fpr_convention=convention,
    )


def id_accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy on the ID set; ``predictions`` are class ids (n,) or class scores (n, C)."""
    pred = np.asarray(predictions)
    lab = np.asarray(labels)
    if pred.ndim == 2:
        if pred.shape[1] == 0:
            raise OODBenchError("Predictions have shape (n, 0): there are no classes to pick.")
        pred = pred.argmax(axis=1)
    if pred.ndim != 1 or lab.ndim != 1:
        raise OODBenchError(
            f"Predictions must be (n,) class ids or (n, C) scores and labels (n,); "
            f"got shapes {pred.shape} and {lab.shape}."
        )
    if pred.size != lab.size:
        raise OODBenchError(
            f"Predictions and labels differ in length ({pred.size} vs {lab.size}); "
            "they must come from the same ID samples in the same order."
        )
    if lab.size == 0:
        raise OODBenchError("Predictions and labels are empty; need at least one ID sample.")
    return float(np.mean(pred == lab))


def bootstrap_ci(
    id_scores: ArrayLike,
    ood_scores: ArrayLike,
    n: int,
    seed: int = 0,
    alpha: float = 0.05,
    convention: str = "paper",
) -> dict[str, tuple[float, float]]:
    """Percentile ``1 - alpha`` bootstrap intervals of auroc, fpr95, aupr_in and aupr_out.

    Each of the ``n`` replicates resamples the ID and the OOD scores separately, with
    replacement and at their original sizes; the result depends only on the inputs and ``seed``.
    Replicates use a one-sort NumPy evaluation that matches scikit-learn to float rounding.
    """
    _check_convention(convention)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise OODBenchError(f"Bootstrap needs n >= 1 resamples, got {n!r}.")
    if not 0.0 < float(alpha) < 1.0:
        raise OODBenchError(f"Bootstrap alpha must lie strictly between 0 and 1, got {alpha!r}.")
    id_s, ood_s = _as_pair(id_scores, ood_scores)
    rng = np.random.default_rng(seed)
    samples = np.empty((int(n), len(METRIC_NAMES)), dtype=np.float64)
    for i in range(int(n)):
        rid = id_s[rng.integers(0, id_s.size, id_s.size)]
        rood = ood_s[rng.integers(0, ood_s.size, ood_s.size)]
        samples[i] = _fast_metrics(rid, rood, convention)
    lo, hi = np.quantile(samples, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return {name: (float(lo[j]), float(hi[j])) for j, name in enumerate(METRIC_NAMES)}


def mean_metrics(items: Sequence[OODMetrics]) -> dict[str, float]:
    """Unweighted mean over OOD sets of auroc, fpr95, aupr_in and aupr_out."""
    items = list(items)
    if not items:
        raise OODBenchError("Cannot average metrics over zero OOD sets.")
    conventions = sorted({m.fpr_convention for m in items})
    if len(conventions) > 1:
        raise OODBenchError(
            "Cannot average FPR95 computed under different conventions "
            f"({', '.join(conventions)}); recompute all sets with one convention."
        )
    return {name: float(np.mean([getattr(m, name) for m in items])) for name in METRIC_NAMES}

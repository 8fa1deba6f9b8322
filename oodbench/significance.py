"""Is one method's AUROC really different from another's? A paired bootstrap over the same images.

Two runs on the same suite score the same images, so their AUROC difference is compared with
the images resampled *jointly*: each of ``resamples`` replicates draws the ID test images and
every OOD set's images with replacement (at their sizes) and evaluates both methods on that
same draw. The replicate differences give a percentile 95 % interval and a two-sided p-value;
a difference is significant when the interval excludes 0. The statistic is the mean AUROC over
the compared OOD sets (the leaderboard's ranking key), each AUROC averaged over the run's
generations when it has several (as the record's metrics are).

Per-image scores live beside a record in a sidecar ``<record stem>.scores.npz``
(:func:`scores_path`), written by :func:`write_scores`:

* ``id``: float array (G, n_id), the ID test images' scores in the suite's order, one row per
  generation (G = 1 for a single run; a 1-d array is read as one row);
* ``ood/<set>``: float array (G, n_set) per OOD set, same order and rows;
* ``images`` (optional): a string naming the image lists (e.g. a content key of the ordered
  image ids); two runs are compared only when theirs are equal or either lacks it.

Scores keep the dtype the scorer produced; higher means more in-distribution, as everywhere.
Replicates are exact Mann-Whitney AUROCs (ties count 1/2, as scikit-learn's) computed from
resample counts, so a replicate costs O(n) after one sort, for any suite size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from oodbench.cache import atomic_write
from oodbench.errors import RecordError

SCORES_SUFFIX = ".scores.npz"
RESAMPLES = 2000
ALPHA = 0.05
CHUNK = 100  # replicates drawn per generator: results do not depend on the suite's size


@dataclass(frozen=True)
class ScoreSet:
    """Per-image scores of one run: ``id`` (G, n_id) and ``ood`` set -> (G, n_set)."""

    id: np.ndarray
    ood: dict[str, np.ndarray]
    images: str | None = None

    @property
    def generations(self) -> int:
        return int(self.id.shape[0])

    def auroc(self, ood_set: str) -> float:
        """AUROC of ``ood_set``, averaged over generations (what the record's metrics hold)."""
        return float(np.mean([auroc(i, o) for i, o in zip(self.id, self.ood[ood_set],
                                                          strict=True)]))


@dataclass(frozen=True)
class Comparison:
    """Method A minus method B: mean AUROC difference, its 95 % interval and p-value."""

    delta: float
    low: float
    high: float
    p_value: float
    resamples: int

    @property
    def verdict(self) -> str:
        """"better" / "worse" when the interval excludes 0, else "n.s." (not significant)."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "n.s."


def scores_path(record_path: Path) -> Path:
    """``x.json`` -> ``x.scores.npz`` (the sidecar of a record)."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.stem + SCORES_SUFFIX)


def _rows(values: ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(values)
    array = array[None, :] if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] == 0 or not np.issubdtype(array.dtype, np.number):
        raise RecordError(f"{what} must be a non-empty (n,) or (generations, n) array of "
                          f"scores, got shape {array.shape} ({array.dtype}); rewrite the scores "
                          f"with `oodbench run`.")
    if not np.all(np.isfinite(array)):
        raise RecordError(f"{what} holds a non-finite score; rewrite the scores with "
                          f"`oodbench run`.")
    return array


def write_scores(record_path: Path, id_scores: ArrayLike, ood_scores: Mapping[str, ArrayLike],
                 images: str | None = None) -> Path:
    """Write the sidecar of ``record_path`` atomically; returns its path."""
    path = scores_path(record_path)
    arrays = {"id": _rows(id_scores, f"{path.name}: id")}
    for name, scores in ood_scores.items():
        arrays[f"ood/{name}"] = _rows(scores, f"{path.name}: ood/{name}")
    if len({a.shape[0] for a in arrays.values()}) != 1:
        raise RecordError(f"{path.name}: every array needs one row per generation; pass the "
                          f"same number of generations for the ID and every OOD set.")
    if images is not None:
        arrays["images"] = np.array(str(images))

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **cast(dict[str, Any], arrays))

    atomic_write(path, save)
    return path


def read_scores(path: Path) -> ScoreSet:
    """Read a sidecar; a file that is not one is a one-line :class:`RecordError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise RecordError(f"{path.name} is not a readable scores file ({type(exc).__name__}); "
                          f"remove it or rewrite it with `oodbench run`.") from None
    if "id" not in arrays:
        raise RecordError(f"{path.name} has no 'id' array; remove it or rewrite it with "
                          f"`oodbench run`.")
    ood = {key.removeprefix("ood/"): _rows(value, f"{path.name}: {key}")
           for key, value in sorted(arrays.items()) if key.startswith("ood/")}
    scores = ScoreSet(_rows(arrays["id"], f"{path.name}: id"), ood,
                      str(arrays["images"]) if "images" in arrays else None)
    if not ood or any(a.shape[0] != scores.generations for a in ood.values()):
        raise RecordError(f"{path.name} needs 'ood/<set>' arrays with one row per generation "
                          f"like 'id'; remove it or rewrite it with `oodbench run`.")
    return scores


def auroc(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """AUROC with ID as positive: P(id > ood) + P(id == ood) / 2 (scikit-learn's value)."""
    id_s, ood_s = np.asarray(id_scores, dtype=np.float64), np.asarray(ood_scores, np.float64)
    ones = (np.ones((1, id_s.size)), np.ones((1, ood_s.size)))
    return float(_resampled_auroc(id_s, ood_s, *ones)[0])


def _resampled_auroc(id_s: np.ndarray, ood_s: np.ndarray, id_counts: np.ndarray,
                     ood_counts: np.ndarray) -> np.ndarray:
    """AUROC of each replicate, given how often each image was drawn: (R, n_id), (R, n_ood)."""
    order = np.argsort(ood_s, kind="stable")
    sorted_ood = ood_s[order]
    below = np.searchsorted(sorted_ood, id_s, side="left")  # OOD images scoring < each ID one
    upto = np.searchsorted(sorted_ood, id_s, side="right")  # ... scoring <= it
    cum = np.zeros((ood_counts.shape[0], ood_s.size + 1))
    np.cumsum(ood_counts[:, order], axis=1, out=cum[:, 1:])
    wins = cum[:, below] + 0.5 * (cum[:, upto] - cum[:, below])
    return (id_counts * wins).sum(axis=1) / (id_counts.sum(axis=1) * ood_counts.sum(axis=1))


def _generation_mean_auroc(run: ScoreSet, name: str, id_counts: np.ndarray,
                           ood_counts: np.ndarray) -> np.ndarray:
    """Each replicate's AUROC on ``name``, averaged over the run's generations (as the record
    averages them); the same draws for every generation."""
    return np.mean([_resampled_auroc(np.asarray(i, np.float64), np.asarray(o, np.float64),
                                     id_counts, ood_counts)
                    for i, o in zip(run.id, run.ood[name], strict=True)], axis=0)


def _counts(rng: np.random.Generator, replicates: int, n: int) -> np.ndarray:
    """How often each of ``n`` images is drawn in each replicate (draws with replacement)."""
    draws = rng.integers(0, n, size=(replicates, n)) + n * np.arange(replicates)[:, None]
    return np.bincount(draws.ravel(), minlength=replicates * n).reshape(replicates, n)


def _check_pair(a: ScoreSet, b: ScoreSet, sets: Sequence[str]) -> None:
    if a.images is not None and b.images is not None and a.images != b.images:
        raise RecordError("The two runs scored different images (their scores' 'images' "
                          "differ); compare runs of the same suite version.")
    for name, x, y in [("id", a.id, b.id), *((s, a.ood[s], b.ood[s]) for s in sets)]:
        if x.shape[1] != y.shape[1]:
            raise RecordError(f"The two runs scored {x.shape[1]} and {y.shape[1]} images of "
                              f"{name}; compare runs of the same suite version.")


def paired_bootstrap(a: ScoreSet, b: ScoreSet, sets: Sequence[str] | None = None,
                     resamples: int = RESAMPLES, seed: int = 0,
                     alpha: float = ALPHA) -> Comparison:
    """A's mean AUROC over ``sets`` minus B's, with a paired bootstrap over the same images.

    ``sets`` defaults to the OOD sets both hold. The interval is the percentile
    ``1 - alpha`` interval of the replicate differences; the two-sided p-value is
    ``min(1, 2 * min(#(d <= 0) + 1, #(d >= 0) + 1) / (resamples + 1))``.
    """
    sets = list(sets) if sets is not None else sorted(set(a.ood) & set(b.ood))
    missing = [s for s in sets if s not in a.ood or s not in b.ood]
    if not sets or missing:
        raise RecordError(f"Both runs need scores of the OOD sets compared; missing: "
                          f"{', '.join(missing) or 'no common set'}.")
    if resamples < 1:
        raise RecordError(f"A bootstrap needs at least 1 resample, got {resamples}.")
    _check_pair(a, b, sets)
    deltas = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        rng = np.random.default_rng([seed, start // CHUNK])
        id_counts = _counts(rng, size, a.id.shape[1])
        total = np.zeros(size)
        for name in sets:
            ood_counts = _counts(rng, size, a.ood[name].shape[1])
            total += (_generation_mean_auroc(a, name, id_counts, ood_counts)
                      - _generation_mean_auroc(b, name, id_counts, ood_counts))
        deltas[start:start + size] = total / len(sets)
    delta = float(np.mean([a.auroc(s) - b.auroc(s) for s in sets]))
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    tail = min(np.sum(deltas <= 0), np.sum(deltas >= 0))
    p_value = min(1.0, 2.0 * (tail + 1) / (resamples + 1))
    return Comparison(delta, float(low), float(high), float(p_value), resamples)


def auroc_intervals(scores: ScoreSet, resamples: int = RESAMPLES, seed: int = 0,
                    alpha: float = ALPHA) -> dict[str, tuple[float, float]]:
    """Percentile ``1 - alpha`` bootstrap interval of each OOD set's AUROC (averaged over the
    generations, with the same images drawn for every generation), from the per-image scores."""
    intervals: dict[str, tuple[float, float]] = {}
    for name in sorted(scores.ood):
        values = np.empty(resamples)
        for start in range(0, resamples, CHUNK):
            size = min(CHUNK, resamples - start)
            rng = np.random.default_rng([seed, start // CHUNK])
            id_counts = _counts(rng, size, scores.id.shape[1])
            ood_counts = _counts(rng, size, scores.ood[name].shape[1])
            values[start:start + size] = _generation_mean_auroc(scores, name, id_counts,
                                                                ood_counts)
        low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
        intervals[name] = (float(low), float(high))
    return intervals

"""OLE's text-side maths, as pure functions on L2-normalised embeddings (float64 numpy rows).

* Outlier prototype learning (OPL): cluster the outlier label embeddings, prototypes = the
  normalised cluster means; refinement keeps the prototypes whose highest cosine to any ID
  class lies strictly below theta, the ``quantile`` of those highest cosines.
* Hard outlier prototype generation (HOPG): boundary ID classes (per ID cluster, the members
  least similar to its mean) are mixed with their most similar kept prototype,
  g = normalise(lambda*b + (1 - lambda)*p) with lambda ~ U(0, 0.5), and g is kept only if its
  highest ID cosine is below the same theta.

Nothing here knows a backbone or a width: the fine-tuner wraps these with caching.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from oodbench_ole.gmm import fit_full_mixture

Covariance = Literal["full", "tied", "diag", "spherical", "kmeans"]
# how a full-covariance mixture is fitted: our low-rank EM (same result) or sklearn's
GMMSolver = Literal["woodbury", "sklearn"]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit rows (a zero row stays zero instead of becoming NaN)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def distinct_count(x: np.ndarray) -> int:
    return int(np.unique(np.asarray(x), axis=0).shape[0]) if len(x) else 0


def cluster(data: np.ndarray, k: int, covariance: Covariance, seed: int,
            reg_covar: float = 1e-6, max_iter: int = 100, tol: float = 1e-3,
            solver: GMMSolver = "woodbury") -> tuple[np.ndarray, np.ndarray]:
    """(means [k', D], hard labels [N]) with k' = min(k, distinct rows), at least 1.

    ``full`` is sklearn's ``GaussianMixture`` fit; ``solver="woodbury"`` runs the same EM in
    low-rank form (:mod:`oodbench_ole.gmm`, same means and labels, minutes -> seconds for
    OLE's 500 components), ``"sklearn"`` calls sklearn itself. ``kmeans`` is exactly the
    mixture's initialisation (one k-means run, same random_state): close to the mixture means.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    data = np.asarray(data, dtype=np.float64)
    k = max(1, min(int(k), distinct_count(data)))
    if covariance == "full" and solver == "woodbury":
        fit = fit_full_mixture(data, k, seed, reg_covar, max_iter, tol)
        return fit.means, fit.labels
    with warnings.catch_warnings():
        # few points per component in hundreds of dimensions: EM may stop at max_iter
        warnings.simplefilter("ignore", ConvergenceWarning)
        if covariance == "kmeans":
            km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(data)
            return km.cluster_centers_, km.labels_
        gm = GaussianMixture(n_components=k, covariance_type=covariance, random_state=seed,
                             reg_covar=reg_covar, max_iter=max_iter, tol=tol).fit(data)
        return gm.means_, gm.predict(data)


def max_id_cosine(vectors: np.ndarray, id_emb: np.ndarray) -> np.ndarray:
    """Per row of ``vectors``, its highest cosine to an ID class embedding."""
    return (vectors @ id_emb.T).max(axis=1)


@dataclass
class Refinement:
    kept: np.ndarray  # indices of the kept prototypes, ascending
    theta: float
    max_cos: np.ndarray  # per prototype, its highest ID cosine
    forced: bool = False  # True when min_keep overrode the strict threshold


def refine(prototypes: np.ndarray, id_emb: np.ndarray, quantile: float,
           min_keep: int = 1) -> Refinement:
    """Keep prototypes with max ID cosine < theta = np.quantile(max cosines, quantile).

    The strict ``<`` follows the official code; with very few prototypes it can keep none, so
    ``min_keep`` of the least ID-like prototypes are kept then (our addition, for tiny label sets).
    """
    m = max_id_cosine(prototypes, id_emb)
    theta = float(np.quantile(m, quantile))
    kept = np.flatnonzero(m < theta)
    forced = kept.size < min_keep
    if forced:
        kept = np.sort(np.argsort(m, kind="stable")[: min(min_keep, len(m))])
    return Refinement(kept, theta, m, forced)


def boundary_indices(id_emb: np.ndarray, n_components: int, per_component: int,
                     covariance: Covariance, seed: int, reg_covar: float = 1e-6,
                     max_iter: int = 100, tol: float = 1e-3,
                     solver: GMMSolver = "woodbury") -> np.ndarray:
    """ID rows at the edge of their cluster, in cluster order then ascending cosine to its mean.

    Clamped for small ID sets: at most min(n_components, C) clusters and at most the cluster's
    size per cluster (the official code needs >= 30 members in each of 5 clusters).
    """
    means, labels = cluster(id_emb, n_components, covariance, seed, reg_covar, max_iter, tol,
                            solver)
    centres = normalize_rows(means)
    out: list[int] = []
    for j, centre in enumerate(centres):
        members = np.flatnonzero(labels == j)
        if members.size == 0:  # a mixture component can end up owning no class
            continue
        order = np.argsort(id_emb[members] @ centre, kind="stable")
        out.extend(members[order[: min(per_component, members.size)]].tolist())
    return np.asarray(out, dtype=np.int64)


@dataclass
class InBetween:
    vectors: np.ndarray  # [B, D] all generated g (before the theta filter)
    partner: np.ndarray  # [B] index of the prototype each boundary vector was mixed with
    lambdas: np.ndarray  # [B] weight of the ID (boundary) vector
    kept: np.ndarray  # [B] bool, max ID cosine < theta


def in_between(boundary: np.ndarray, prototypes: np.ndarray, id_emb: np.ndarray, theta: float,
               seed: int, lambda_min: float = 0.0, lambda_max: float = 0.5) -> InBetween:
    """Mix each boundary vector with its most similar prototype; keep g below theta.

    lambda is drawn with Python's ``random.Random(seed).uniform``, one draw per boundary vector
    in order, as the official code does with the global ``random`` seeded at 42.
    """
    dim = prototypes.shape[1]
    if len(boundary) == 0 or len(prototypes) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return InBetween(np.zeros((0, dim)), empty, np.zeros(0), np.zeros(0, dtype=bool))
    partner = (boundary @ prototypes.T).argmax(axis=1)
    rng = random.Random(seed)
    lambdas = np.array([rng.uniform(lambda_min, lambda_max) for _ in range(len(boundary))])
    mixed = lambdas[:, None] * boundary + (1.0 - lambdas[:, None]) * prototypes[partner]
    vectors = normalize_rows(mixed)
    return InBetween(vectors, partner, lambdas, max_id_cosine(vectors, id_emb) < theta)


@dataclass
class OutlierSet:
    """OLE's outlier set O: kept prototypes followed by kept in-between prototypes."""

    vectors: np.ndarray
    labels: list[str]
    summary: dict[str, float | int | bool] = field(default_factory=dict)


@dataclass
class HOPGConfig:
    """Hard outlier prototype generation settings (defaults of the official code)."""

    enabled: bool = True
    id_components: int = 5
    per_component: int = 30
    covariance: Covariance = "full"
    seed: int = 42
    lambda_min: float = 0.0
    lambda_max: float = 0.5
    reg_covar: float = 1e-6
    max_iter: int = 100
    tol: float = 1e-3
    solver: GMMSolver = "woodbury"


def assemble(prototypes: np.ndarray, id_emb: np.ndarray, quantile: float, hopg: HOPGConfig,
             min_keep: int = 1) -> OutlierSet:
    """Refine the prototypes against ID, add the in-between ones: O, its names and counts."""
    ref = refine(prototypes, id_emb, quantile, min_keep)
    kept = prototypes[ref.kept]
    labels = [f"prototype-{i}" for i in ref.kept.tolist()]
    summary: dict[str, float | int | bool] = {
        "prototypes": len(prototypes), "kept_prototypes": len(kept), "theta": ref.theta,
        "forced_keep": ref.forced, "boundary": 0, "kept_between": 0,
    }
    vectors = kept
    if hopg.enabled:
        idx = boundary_indices(id_emb, hopg.id_components, hopg.per_component, hopg.covariance,
                               hopg.seed, hopg.reg_covar, hopg.max_iter, hopg.tol, hopg.solver)
        mid = in_between(id_emb[idx], kept, id_emb, ref.theta, hopg.seed, hopg.lambda_min,
                         hopg.lambda_max)
        vectors = np.concatenate([kept, mid.vectors[mid.kept]])
        labels += [f"between-{j}" for j in np.flatnonzero(mid.kept).tolist()]
        summary.update(boundary=len(idx), kept_between=int(mid.kept.sum()))
    summary["outliers"] = len(vectors)
    return OutlierSet(vectors, labels, summary)

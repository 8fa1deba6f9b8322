"""Full-covariance Gaussian mixture EM that is fast when components own few points.

OLE fits a mixture of K = 500 full-covariance Gaussians (sklearn ``GaussianMixture`` with its
defaults: k-means start, ``reg_covar`` 1e-6, ``tol`` 1e-3, one init) to ~10k label embeddings
of width 384-768. With ~20 labels per component and hundreds of dimensions, every covariance
is a rank-m scatter plus ``reg_covar * I`` (m = the points with non-zero responsibility).
sklearn still builds, factorises and applies a dense D x D matrix per component:
O(K·N·D²) per iteration, tens of minutes on a CPU.

This module runs the same EM (same k-means start, update formulas, stopping rule and final
labels) but applies each covariance Σ = r·I + U Uᵀ (U: D x m, columns sqrt(w_i/n_k)·(x_i - μ))
through the Woodbury identity, with M = r·I_m + UᵀU:

    (x-μ)ᵀ Σ⁻¹ (x-μ) = (‖x-μ‖² - eᵀ M⁻¹ e) / r,   e = Uᵀ(x-μ),
    log det Σ = (D - m)·log r + log det M.

Every inner product above is an entry of the Gram matrix X Xᵀ or of X μᵀ, so one Gram matrix
(computed once per fit, or per block when it would not fit in memory) replaces the per-iteration
D x D work: an E-step costs O(N·Σ m_k²) instead of O(K·N·D²). Components with m >= D use the
dense Cholesky form. The maths is exact up to float64 rounding: means, labels and iteration
counts agree with sklearn's (tests compare both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

EPS = float(np.finfo(np.float64).eps)
# keep the N x N Gram matrix up to this size; above it the rows are recomputed per E-step
GRAM_BYTES = 2 << 30
# rows of X Xᵀ gathered at once in an E-step (bounds memory at N x this x 8 bytes)
BLOCK_ROWS = 4096


def _one_thread() -> threadpool_limits:
    """One BLAS thread for the many small per-component products (threads only add waiting)."""
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class _Component:
    mean: np.ndarray  # [D]
    support: np.ndarray | None  # [m] rows with non-zero responsibility; None = dense form
    scale: np.ndarray  # [m] sqrt(w_i / n_k)
    inv_chol: np.ndarray  # inverse lower Cholesky factor of M (Woodbury) or of Σ (dense)
    log_det: float  # log det Σ


@dataclass
class MixtureFit:
    """Result of :func:`fit_full_mixture` (what sklearn's estimator would hold)."""

    means: np.ndarray  # [K, D]
    weights: np.ndarray  # [K]
    labels: np.ndarray  # [N] argmax responsibility under the final parameters
    n_iter: int
    converged: bool
    lower_bound: float  # mean log-likelihood at the last iteration


class _Data:
    """The points, their squared norms and (when it fits) their Gram matrix."""

    def __init__(self, x: np.ndarray, gram_bytes: int = GRAM_BYTES) -> None:
        self.x = x
        self.sq_norms = np.einsum("ij,ij->i", x, x)
        n = x.shape[0]
        self.gram = x @ x.T if n * n * 8 <= gram_bytes else None

    def cross(self, idx: np.ndarray) -> np.ndarray:
        """[len(idx), N] inner products of the points ``idx`` with every point.

        Rows, not columns: gathering rows of the symmetric Gram matrix reads contiguous memory.
        """
        return self.gram[idx] if self.gram is not None else self.x[idx] @ self.x.T


def kmeans_labels(data: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The mixture's starting partition: one sklearn k-means run with ``random_state=seed``."""
    from sklearn.cluster import KMeans

    # a fresh RandomState(seed) is what GaussianMixture hands KMeans (same draws as an int);
    # one BLAS thread: k-means++ makes hundreds of small products where threads only cost
    with _one_thread():
        km = KMeans(n_clusters=k, n_init=1, random_state=np.random.RandomState(seed))
        return km.fit(data).labels_


def _inverse_cholesky(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """(L⁻¹, log det) of a symmetric positive definite matrix, L its lower Cholesky factor."""
    chol = cholesky(matrix, lower=True, check_finite=False)
    inv = solve_triangular(chol, np.eye(len(matrix)), lower=True, check_finite=False)
    return inv, 2.0 * float(np.log(np.diag(chol)).sum())


def _m_step(data: _Data, resp: np.ndarray, reg_covar: float
            ) -> tuple[np.ndarray, list[_Component]]:
    """(n_k [K], components) from responsibilities, with sklearn's formulas."""
    x = data.x
    nk = resp.sum(axis=0) + 10 * EPS  # sklearn's guard against empty components
    means = (resp.T @ x) / nk[:, None]
    # rows with non-zero responsibility, grouped by component (zeros add nothing to Σ)
    comp, rows = np.nonzero(resp.T > 0)
    bounds = np.searchsorted(comp, np.arange(resp.shape[1] + 1))
    with _one_thread():
        return nk, [_component(x, means[k], rows[bounds[k]:bounds[k + 1]], resp[:, k], nk[k],
                               reg_covar) for k in range(resp.shape[1])]


def _component(x: np.ndarray, mu: np.ndarray, idx: np.ndarray, resp: np.ndarray, nk: float,
               reg_covar: float) -> _Component:
    """Σ = r·I + U Uᵀ of one component, in Woodbury form (dense when m >= D)."""
    dim, m = x.shape[1], idx.size
    scale = np.sqrt(resp[idx] / nk)
    if m >= dim:  # as many points as dimensions: the dense D x D form is cheaper
        u = (x[idx] - mu) * scale[:, None]
        cov = u.T @ u
        cov.flat[:: dim + 1] += reg_covar
        inv, log_det = _inverse_cholesky(cov)
        return _Component(mu, None, scale, inv, log_det)
    if m == 0:  # an empty component: Σ = r·I
        return _Component(mu, idx, scale, np.zeros((0, 0)), dim * math.log(reg_covar))
    # UᵀU from inner products: (x_i-μ)·(x_j-μ) = x_i·x_j - x_i·μ - x_j·μ + μ·μ
    xs = x[idx]
    proj = xs @ mu
    inner = (xs @ xs.T - proj[:, None] - proj[None, :] + mu @ mu) * np.outer(scale, scale)
    inner.flat[:: m + 1] += reg_covar
    inv, log_det = _inverse_cholesky(inner)
    return _Component(mu, idx, scale, inv, log_det + (dim - m) * math.log(reg_covar))


def _log_prob(data: _Data, components: list[_Component], reg_covar: float) -> np.ndarray:
    """[N, K] log N(x | μ_k, Σ_k)."""
    x = data.x
    n, dim = x.shape
    means = np.stack([c.mean for c in components])
    xm = means @ x.T  # [K, N] μ_k·x
    mm = np.einsum("ij,ij->i", means, means)
    sq = np.maximum(data.sq_norms[None, :] - 2.0 * xm + mm[:, None], 0.0)  # ‖x - μ_k‖²
    maha = np.empty((len(components), n))
    low = [k for k, c in enumerate(components) if c.support is not None]
    start = 0
    while start < len(low):  # gather X Xᵀ rows for a block of components at once
        stop, width = start, 0
        while stop < len(low) and (stop == start or
                                   width + components[low[stop]].support.size <= BLOCK_ROWS):
            width += components[low[stop]].support.size
            stop += 1
        block = low[start:stop]
        cross = data.cross(np.concatenate([components[k].support for k in block]))
        row = 0
        with _one_thread():
            for k in block:
                comp = components[k]
                idx = comp.support
                m = idx.size
                if m == 0:  # an empty component: Σ = r·I
                    maha[k] = sq[k] / reg_covar
                    continue
                # e_i = s_i·(x_i - μ)·(x - μ) for every x at once: [m, N]
                e = cross[row:row + m] - xm[k][None, :] - xm[k, idx][:, None] + mm[k]
                e *= comp.scale[:, None]
                row += m
                v = comp.inv_chol @ e  # ‖v‖² = eᵀ M⁻¹ e
                maha[k] = np.maximum(sq[k] - np.einsum("ij,ij->j", v, v), 0.0) / reg_covar
        start = stop
    for k, comp in enumerate(components):
        if comp.support is None:
            v = comp.inv_chol @ (x - comp.mean).T
            maha[k] = np.einsum("ij,ij->j", v, v)
    log_dets = np.array([c.log_det for c in components])
    return -0.5 * (dim * math.log(2 * math.pi) + maha.T + log_dets[None, :])


def _e_step(data: _Data, weights: np.ndarray, components: list[_Component],
            reg_covar: float) -> tuple[float, np.ndarray]:
    """(mean log-likelihood, log responsibilities [N, K])."""
    weighted = _log_prob(data, components, reg_covar) + np.log(weights)[None, :]
    norm = logsumexp(weighted, axis=1)
    return float(norm.mean()), weighted - norm[:, None]


def fit_full_mixture(points: np.ndarray, k: int, seed: int, reg_covar: float = 1e-6,
                     max_iter: int = 100, tol: float = 1e-3,
                     gram_bytes: int = GRAM_BYTES) -> MixtureFit:
    """sklearn ``GaussianMixture(k, covariance_type="full", random_state=seed).fit``, faster.

    Same k-means start, EM updates, ``|Δ lower bound| < tol`` stop and final E-step labels.
    ``reg_covar`` must be positive (it makes Σ invertible, as in sklearn).
    """
    x = np.ascontiguousarray(points, dtype=np.float64)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n_samples, got k={k}, n={n}")
    if reg_covar <= 0:
        raise ValueError("reg_covar must be positive")
    resp = np.zeros((n, k))
    resp[np.arange(n), kmeans_labels(x, k, seed)] = 1.0
    data = _Data(x, gram_bytes)
    nk, components = _m_step(data, resp, reg_covar)
    weights = nk / n  # sklearn's initial weights are not renormalised
    lower_bound, converged, n_iter = -np.inf, False, 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        previous = lower_bound
        lower_bound, log_resp = _e_step(data, weights, components, reg_covar)
        with np.errstate(under="ignore"):
            resp = np.exp(log_resp)
        nk, components = _m_step(data, resp, reg_covar)
        weights = nk / nk.sum()
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    _, log_resp = _e_step(data, weights, components, reg_covar)
    means = np.stack([c.mean for c in components])
    return MixtureFit(means, weights, log_resp.argmax(axis=1), n_iter, converged, lower_bound)

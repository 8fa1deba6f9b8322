"""The low-rank full-covariance EM gives sklearn's GaussianMixture fit, in every regime."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from oodbench_ole.gmm import fit_full_mixture
from oodbench_ole.prototypes import cluster, normalize_rows


def _unit_clusters(seed: int, n_clusters: int, size: int, dim: int, spread: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    return normalize_rows(np.repeat(centres, size, axis=0)
                          + spread * rng.normal(size=(n_clusters * size, dim)))


def _mixed_sizes() -> np.ndarray:
    """Clusters of 40 points (>= D: dense form) and of 4 points (< D: low-rank form)."""
    rng = np.random.default_rng(5)
    big = rng.normal(size=(2, 12)) * 3
    small = rng.normal(size=(3, 12)) * 3
    return np.concatenate([*(c + rng.normal(size=(40, 12)) for c in big),
                           *(c + 0.5 * rng.normal(size=(4, 12)) for c in small)])


CASES = {
    # OLE's regime: fewer points per component than dimensions, hard responsibilities
    "few-points-per-component": (_unit_clusters(0, 12, 8, 40, 0.4), 12, 1e-6),
    # low-rank form with soft responsibilities over many iterations
    "soft-low-rank": (_unit_clusters(3, 4, 10, 48, 0.8), 4, 0.2),
    # more points than dimensions: dense Cholesky form, overlapping blobs
    "dense-overlapping": (np.random.default_rng(1).normal(size=(400, 3))
                          + np.repeat(np.arange(4)[:, None] * [0.8, 0.0, 0.0], 100, axis=0),
                          6, 1e-6),
    "dense-and-low-rank": (_mixed_sizes(), 5, 1e-6),
    "one-point-per-component": (_unit_clusters(2, 1, 30, 16, 1.0), 30, 1e-6),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("gram_bytes", [1 << 30, 0])  # with the cached Gram matrix / without
def test_em_matches_sklearn_gaussian_mixture(name, gram_bytes):
    data, k, reg = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(k, covariance_type="full", random_state=42, reg_covar=reg).fit(data)
    fit = fit_full_mixture(data, k, seed=42, reg_covar=reg, gram_bytes=gram_bytes)
    assert fit.n_iter == ref.n_iter_ and fit.converged == ref.converged_
    np.testing.assert_allclose(fit.means, ref.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fit.weights, ref.weights_, rtol=0, atol=1e-12)
    assert np.array_equal(fit.labels, ref.predict(data))
    assert fit.lower_bound == pytest.approx(ref.lower_bound_, rel=1e-9, abs=1e-9)


def test_soft_case_really_is_soft_and_iterates():
    data, k, reg = CASES["soft-low-rank"]
    ref = GaussianMixture(k, covariance_type="full", random_state=42, reg_covar=reg).fit(data)
    proba = ref.predict_proba(data)
    assert ref.n_iter_ > 3 and ((proba > 1e-3) & (proba < 1 - 1e-3)).any()
    assert data.shape[0] < data.shape[1]  # every component has fewer points than dimensions


def test_cluster_full_solvers_agree_and_max_iter_is_respected():
    data = _unit_clusters(4, 6, 5, 24, 0.5)
    fast, fast_labels = cluster(data, 6, "full", seed=42)
    slow, slow_labels = cluster(data, 6, "full", seed=42, solver="sklearn")
    np.testing.assert_allclose(fast, slow, atol=1e-10)
    assert np.array_equal(fast_labels, slow_labels)
    once = fit_full_mixture(data, 6, seed=42, max_iter=1)
    assert once.n_iter == 1 and not once.converged


def test_bad_arguments_fail():
    data = _unit_clusters(0, 2, 3, 4, 0.1)
    with pytest.raises(ValueError):
        fit_full_mixture(data, 7, seed=0)
    with pytest.raises(ValueError):
        fit_full_mixture(data, 2, seed=0, reg_covar=0.0)

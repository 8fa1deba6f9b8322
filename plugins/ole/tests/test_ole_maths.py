"""OLE's score and prototype maths on small cases computed by hand."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from oodbench_ole.prototypes import (
    HOPGConfig,
    assemble,
    boundary_indices,
    cluster,
    in_between,
    normalize_rows,
    refine,
)
from oodbench_ole.scorer import ole_score


def t(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def unit_at(angles_deg) -> np.ndarray:
    """3-d unit vectors in the x-y plane at the given angles from the x axis."""
    a = np.radians(np.asarray(angles_deg, dtype=float))
    return np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)


# -- score -----------------------------------------------------------------------------------
def test_score_is_the_id_share_of_the_softmax():
    # z = x; ID = {x}; O = {y}; s = 1: logits 1 and 0 -> S = e / (e + 1)
    s = ole_score(t([1.0, 0.0]), t([1.0, 0.0]), t([0.0, 1.0]), scale=1.0)
    assert s[0] == pytest.approx(math.e / (math.e + 1))
    # s = 50, ID = {x, y}, O = {-x}: logits 50, 0, -50
    s = ole_score(t([1.0, 0.0]), t([1.0, 0.0], [0.0, 1.0]), t([-1.0, 0.0]), scale=50.0)
    e50 = math.exp(50.0)
    assert s[0] == pytest.approx((e50 + 1) / (e50 + 1 + math.exp(-50.0)), rel=1e-12)


def test_score_hand_case_in_3d_with_two_outliers():
    z = t([0.6, 0.8, 0.0])
    ids, outs = t([1.0, 0.0, 0.0]), t([0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    # cosines: ID 0.6; outliers 0.8 and 0; s = 10
    expected = math.exp(6) / (math.exp(6) + math.exp(8) + 1.0)
    assert ole_score(z, ids, outs, scale=10.0)[0] == pytest.approx(expected)


def test_more_outlier_like_images_score_lower():
    ids, outs = t([1.0, 0.0]), t([0.0, 1.0])
    z = torch.nn.functional.normalize(t([1.0, 0.1], [1.0, 1.0], [0.1, 1.0]), dim=-1)
    scores = ole_score(z, ids, outs, scale=50.0)
    assert scores[0] > scores[1] > scores[2]


def test_score_renormalises_text_rows_and_survives_huge_scales():
    z = t([0.6, 0.8, 0.0])
    ids, outs = t([1.0, 0.0, 0.0]), t([0.0, 1.0, 0.0])
    base = ole_score(z, ids, outs, scale=10.0)
    assert ole_score(z, 3 * ids, 0.5 * outs, scale=10.0) == pytest.approx(base)
    huge = ole_score(z, ids, outs, scale=5000.0)
    assert np.isfinite(huge).all() and 0.0 <= huge[0] < 1e-100


def test_clipn_variant_multiplies_by_the_yes_probability():
    # ID t = x, "no" embedding = y, O = {y}, z = x, s = 1: p = e/(e+1), q = σ(1 - 0) = e/(e+1)
    z, ids, no, outs = t([1.0, 0.0]), t([1.0, 0.0]), t([0.0, 1.0]), t([0.0, 1.0])
    s = ole_score(z, ids, outs, scale=1.0, id_no_features=no)
    assert s[0] == pytest.approx((math.e / (math.e + 1)) ** 2)


# -- outlier prototype learning ----------------------------------------------------------------
def test_cluster_clamps_k_to_distinct_labels_and_keeps_the_width():
    data = normalize_rows(np.array([[1.0, 0, 0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0],
                                    [0, 1.0, 0, 0, 0, 0, 0]]))
    for covariance in ("kmeans", "full"):
        means, labels = cluster(data, 500, covariance, seed=42)
        assert means.shape == (2, 7) and labels.shape == (3,)
        assert labels[0] == labels[1] != labels[2]


def test_kmeans_option_gives_nearly_the_mixture_means():
    rng = np.random.default_rng(0)
    centres = normalize_rows(rng.normal(size=(3, 6)))
    data = normalize_rows(np.repeat(centres, 20, axis=0) + 0.05 * rng.normal(size=(60, 6)))
    gmm, _ = cluster(data, 3, "full", seed=42)
    km, _ = cluster(data, 3, "kmeans", seed=42)
    order = lambda m: m[np.lexsort(m.T)]  # noqa: E731
    assert np.abs(order(gmm) - order(km)).max() < 0.02


def test_refinement_keeps_exactly_the_prototypes_below_the_quantile():
    id_emb = unit_at([0.0])
    # max ID cosines cos(angle): 10 prototypes at 0..90 degrees in 10 degree steps
    angles = np.arange(0, 100, 10)
    protos = unit_at(angles)
    m = np.cos(np.radians(angles))
    ref = refine(protos, id_emb, quantile=0.1)
    # np.quantile (linear) at position 0.9 between the two smallest cosines
    ordered = np.sort(m)
    assert ref.theta == pytest.approx(ordered[0] + 0.9 * (ordered[1] - ordered[0]))
    assert ref.kept.tolist() == [9]  # only the 90-degree prototype lies below theta
    ref = refine(protos, id_emb, quantile=0.35)  # position 3.15 -> keeps the 4 farthest
    assert ref.kept.tolist() == [6, 7, 8, 9] and not ref.forced
    assert (ref.max_cos[ref.kept] < ref.theta).all()
    assert (np.delete(ref.max_cos, ref.kept) >= ref.theta).all()


def test_refinement_is_strict_and_keeps_at_least_min_keep():
    id_emb = unit_at([0.0])
    protos = unit_at([60.0, -60.0, 60.0])  # all max cosines equal 0.5 = theta
    assert refine(protos, id_emb, 0.1, min_keep=0).kept.tolist() == []
    forced = refine(protos, id_emb, 0.1, min_keep=1)
    assert forced.kept.tolist() == [0] and forced.forced
    single = refine(unit_at([45.0]), id_emb, 0.1)  # K = 1: the one prototype is kept
    assert single.kept.tolist() == [0]


# -- hard outlier prototype generation -----------------------------------------------------------
def test_in_between_prototypes_lie_between_id_and_outlier():
    rng = np.random.default_rng(3)
    id_emb = normalize_rows(rng.normal(size=(6, 5)) + np.array([3.0, 0, 0, 0, 0]))
    protos = normalize_rows(rng.normal(size=(4, 5)) - np.array([3.0, 0, 0, 0, 0]))
    ref = refine(protos, id_emb, quantile=1.0)  # theta = the largest max cosine
    mid = in_between(id_emb, protos, id_emb, ref.theta, seed=42)
    for b, g, j, lam in zip(id_emb, mid.vectors, mid.partner, mid.lambdas, strict=True):
        p = protos[j]
        assert j == int(np.argmax(protos @ b))  # mixed with its most similar prototype
        assert 0.0 <= lam <= 0.5
        assert g @ b > b @ p and g @ p > b @ p  # on the arc between b and p
        assert g @ p >= g @ b - 1e-12  # lambda <= 0.5: nearer the outlier prototype
        assert np.linalg.norm(g) == pytest.approx(1.0)
    max_cos = (mid.vectors @ id_emb.T).max(axis=1)
    assert (mid.kept == (max_cos < ref.theta)).all()


def test_lambdas_follow_python_random_like_the_official_code():
    b = unit_at([0.0, 10.0, 20.0])
    mid = in_between(b, unit_at([120.0]), b, theta=1.0, seed=42)
    rng = random.Random(42)
    assert mid.lambdas.tolist() == [rng.uniform(0.0, 0.5) for _ in range(3)]


def test_boundary_vectors_clamped_for_small_id_sets():
    id_emb = unit_at([0.0, 90.0])  # C = 2 < 5 components, 1 member each < 30
    idx = boundary_indices(id_emb, 5, 30, "full", seed=42)
    assert sorted(idx.tolist()) == [0, 1]
    idx = boundary_indices(unit_at([0.0, 5.0, 10.0, 90.0]), 1, 2, "kmeans", seed=42)
    # one cluster: its mean leans to the 3 close classes; the 2 least similar come first
    assert idx.tolist() == [3, 0]


def test_assemble_names_counts_and_determinism():
    rng = np.random.default_rng(1)
    id_emb = normalize_rows(rng.normal(size=(4, 8)) + np.eye(8)[0] * 2)
    labels = normalize_rows(rng.normal(size=(40, 8)))
    protos = normalize_rows(cluster(labels, 20, "kmeans", seed=42)[0])
    hopg = HOPGConfig(covariance="kmeans")
    first = assemble(protos, id_emb, 0.5, hopg)
    again = assemble(protos, id_emb, 0.5, hopg)
    assert np.array_equal(first.vectors, again.vectors) and first.labels == again.labels
    n_kept = first.summary["kept_prototypes"]
    assert first.summary["boundary"] == 4  # min(5, C) clusters, clamped to their sizes
    assert len(first.vectors) == len(first.labels) == first.summary["outliers"]
    assert all(x.startswith("prototype-") for x in first.labels[:n_kept])
    assert all(x.startswith("between-") for x in first.labels[n_kept:])
    assert (first.vectors[n_kept:] @ id_emb.T).max(initial=-1.0) < first.summary["theta"]
    other = assemble(protos, id_emb, 0.5, HOPGConfig(covariance="kmeans", seed=7))
    assert not np.array_equal(other.vectors[n_kept:], first.vectors[n_kept:]) \
        or other.summary["kept_between"] == 0
    bare = assemble(protos, id_emb, 0.5, HOPGConfig(enabled=False))
    assert bare.labels == first.labels[:n_kept]

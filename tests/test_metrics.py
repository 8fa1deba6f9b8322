"""Tests of oodbench.metrics: hand-computed cases, degenerate inputs, properties, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from oodbench.errors import OODBenchError, UnknownNameError
from oodbench.metrics import (
    FPR_CONVENTIONS,
    OODMetrics,
    _fast_metrics,
    bootstrap_ci,
    fpr_at_95_tpr,
    id_accuracy,
    mean_metrics,
    ood_metrics,
)

# --------------------------------------------------------------------------- oracles


def reference_paper_fpr95(id_scores: list[float], ood_scores: list[float]) -> float:
    """Brute-force restatement of Hendrycks' ``fpr_and_fdr_at_recall`` (MCM/NegLabel/EOE).

    Thresholds are the distinct scores, highest first; the reference scans them from the
    highest threshold that accepts every ID sample back up to the top, and keeps the first
    point whose recall is nearest 0.95 (strict ``<``), so ties go to the lower threshold.
    """
    thresholds = sorted(set(id_scores) | set(ood_scores), reverse=True)
    points = []  # (recall, fpr) per threshold, highest threshold first
    for t in thresholds:
        tp = sum(s >= t for s in id_scores)
        fp = sum(s >= t for s in ood_scores)
        points.append((tp / len(id_scores), fp / len(ood_scores)))
        if tp == len(id_scores):
            break
    best_dist, best_fpr = math.inf, math.nan
    for recall, fpr in reversed(points):
        if abs(recall - 0.95) < best_dist:
            best_dist, best_fpr = abs(recall - 0.95), fpr
    return best_fpr


def reference_openood_fpr95(id_scores: list[float], ood_scores: list[float]) -> float:
    """OpenOOD v1.5 ``auc_and_fpr_recall``: sklearn ROC with OOD positive on -confidence."""
    conf = np.r_[id_scores, ood_scores]
    is_ood = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    fpr, tpr, _ = roc_curve(is_ood, -conf)  # default drop_intermediate=True, as in OpenOOD
    return float(fpr[np.argmax(tpr >= 0.95)])


def semantic_openood_fpr95(id_scores: list[float], ood_scores: list[float]) -> float:
    """Fraction of ID flagged OOD at the lowest cut whose OOD recall is >= 0.95.

    A sample is flagged OOD when its score is <= the cut; the cuts are the distinct scores.
    """
    for cut in sorted(set(id_scores) | set(ood_scores)):
        ood_recall = sum(s <= cut for s in ood_scores) / len(ood_scores)
        if ood_recall >= 0.95:
            return sum(s <= cut for s in id_scores) / len(id_scores)
    raise AssertionError("unreachable: the top cut flags every OOD sample")


def pairwise_auroc(id_scores: list[float], ood_scores: list[float]) -> float:
    """P(ID score > OOD score) + 0.5 P(tie), over all pairs."""
    wins = sum((a > b) + 0.5 * (a == b) for a in id_scores for b in ood_scores)
    return wins / (len(id_scores) * len(ood_scores))


# --------------------------------------------------------------------------- strategies

# Integer-valued scores on a small range: many ties, and exact under the transforms below.
int_scores = st.lists(st.integers(-40, 40).map(float), min_size=1, max_size=40)
float_scores = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=60
)
conventions = st.sampled_from(FPR_CONVENTIONS)

INCREASING = {
    "affine": lambda x: 3.0 * x - 7.0,
    "cube": lambda x: x**3,
    "exp": lambda x: np.exp(x / 8.0),
    "tanh": lambda x: np.tanh(x / 50.0),
}


# --------------------------------------------------------------------------- AUROC


def test_auroc_hand_computed() -> None:
    # ID [3, 2] vs OOD [1, 2.5]; pairs (id > ood): 3>1 yes, 3>2.5 yes, 2>1 yes, 2>2.5 no
    # -> 3 of 4 pairs -> 0.75
    assert ood_metrics([3, 2], [1, 2.5]).auroc == pytest.approx(0.75)


def test_auroc_counts_ties_as_half() -> None:
    # ID [2, 1] vs OOD [2, 0]: (2,2) tie = 0.5, (2,0) = 1, (1,2) = 0, (1,0) = 1
    # -> 2.5 / 4 = 0.625
    assert ood_metrics([2, 1], [2, 0]).auroc == pytest.approx(0.625)


def test_auroc_three_vs_two() -> None:
    # ID [4, 3, 1] vs OOD [2, 0]: wins 4>2, 4>0, 3>2, 3>0, 1>0 = 5; loss 1<2 -> 5/6
    assert ood_metrics([4, 3, 1], [2, 0]).auroc == pytest.approx(5 / 6)


# --------------------------------------------------------------------------- AUPR


def test_aupr_in_hand_computed() -> None:
    # ID positive, descending: 4(I) 3(I) 2(O) 1(I) 0(O); AP = sum over ID hits of dRecall * P
    # at 4: R=1/3, P=1/1 -> 1/3;  at 3: R=2/3, P=2/2 -> 1/3;  at 1: R=1, P=3/4 -> 1/3 * 3/4
    # AP = 1/3 + 1/3 + 1/4 = 11/12
    assert ood_metrics([4, 3, 1], [2, 0]).aupr_in == pytest.approx(11 / 12)


def test_aupr_out_hand_computed() -> None:
    # OOD positive on negated scores: ID -> [-4, -3, -1], OOD -> [-2, 0]
    # descending: 0(O) -1(I) -2(O) -3(I) -4(I)
    # at 0: R=1/2, P=1/1 -> 1/2;  at -2: R=1, P=2/3 -> 1/2 * 2/3 = 1/3;  AP = 5/6
    assert ood_metrics([4, 3, 1], [2, 0]).aupr_out == pytest.approx(5 / 6)


def test_aupr_with_ties() -> None:
    # ID [1, 1], OOD [1, 0]. AUPR-In: one tied threshold 1 holds 2 ID + 1 OOD: R=1, P=2/3
    # -> 2/3. AUPR-Out (negated: ID [-1, -1], OOD [-1, 0]): at 0: R=1/2, P=1 -> 1/2; at -1:
    # R=1, P=2/4 -> 1/2 * 1/2 = 1/4 -> 3/4.
    m = ood_metrics([1, 1], [1, 0])
    assert m.aupr_in == pytest.approx(2 / 3)
    assert m.aupr_out == pytest.approx(3 / 4)


# --------------------------------------------------------------------------- FPR95


def test_fpr95_paper_hand_computed() -> None:
    # ID = 1..20, OOD = [19.5, 10, 0.5]. ID recall at threshold t = #ID >= t / 20; recall
    # 19/20 = 0.95 exactly at t = 2 (the next lower threshold, 1, gives recall 1.0).
    # OOD >= 2: {19.5, 10} -> FPR = 2/3.
    ids = list(np.arange(1.0, 21.0))
    assert fpr_at_95_tpr(ids, [19.5, 10, 0.5], "paper") == pytest.approx(2 / 3)


def test_fpr95_openood_hand_computed() -> None:
    # Same data. OOD recall >= 0.95 with 3 OOD samples needs all 3 flagged, i.e. flag
    # score <= 19.5 (the highest OOD score); ID <= 19.5 are 1..19 -> FPR = 19/20 = 0.95.
    ids = list(np.arange(1.0, 21.0))
    assert fpr_at_95_tpr(ids, [19.5, 10, 0.5], "openood") == pytest.approx(0.95)


def test_conventions_differ_small_case() -> None:
    # ID [4, 3, 2, 0], OOD [1, 0.5, -1, -2].
    # paper: recalls are 1/4, 2/4, 3/4, 1; nearest to 0.95 is 1.0 (distance 0.05), reached at
    #   t = 0 (lowest ID score); OOD >= 0: {1, 0.5} -> 2/4 = 0.5.
    # openood: flag all 4 OOD (recall 1 >= 0.95) -> flag score <= 1; ID <= 1: {0} -> 1/4.
    ids, oods = [4, 3, 2, 0], [1, 0.5, -1, -2]
    assert fpr_at_95_tpr(ids, oods, "paper") == pytest.approx(0.5)
    assert fpr_at_95_tpr(ids, oods, "openood") == pytest.approx(0.25)


def test_paper_ties_in_recall_go_to_lowest_threshold() -> None:
    # ID: nineteen 1.0 and one 0.0; OOD [0.5, 0.6, 0.7]. Recall 19/20 = 0.95 holds at the
    # thresholds 1.0, 0.7, 0.6 and 0.5. The reference (Hendrycks' fpr_and_fdr_at_recall)
    # scans from low to high thresholds and keeps the first exact hit: t = 0.5, so all three
    # OOD count -> 1.0 (a first-index argmin over sklearn's roc_curve would give t = 1.0, 0.0).
    # openood: flag all 3 OOD -> flag score <= 0.7; ID <= 0.7: {0.0} -> 1/20 = 0.05.
    ids, oods = [1.0] * 19 + [0.0], [0.5, 0.6, 0.7]
    assert fpr_at_95_tpr(ids, oods, "paper") == 1.0
    assert fpr_at_95_tpr(ids, oods, "openood") == pytest.approx(0.05)


def test_paper_nearest_recall_uses_float64_distance() -> None:
    # ID = 1..10, OOD [1.5, 5.5]. Recalls are k/10; 0.9 and 1.0 look equally near 0.95, but
    # in float64 |0.9 - 0.95| = 0.04999999999999993 < |1.0 - 0.95| = 0.05000000000000004, so
    # recall 0.9 wins; it holds at t = 2 and t = 1.5, the lowest (1.5) is taken:
    # OOD >= 1.5: both -> 1.0.  openood: flag both OOD -> score <= 5.5 -> ID 1..5 -> 0.5.
    assert abs(0.9 - 0.95) < abs(1.0 - 0.95)
    ids = list(np.arange(1.0, 11.0))
    assert fpr_at_95_tpr(ids, [1.5, 5.5], "paper") == 1.0
    assert fpr_at_95_tpr(ids, [1.5, 5.5], "openood") == pytest.approx(0.5)


def test_openood_drops_collinear_roc_points_like_sklearn() -> None:
    # OpenOOD calls roc_curve with drop_intermediate=True. OOD-positive order (confidence
    # ascending): 36 OOD at -10 (OOD recall 0.90, ID FPR 0), then a tie group at -5 of 1 ID + 2
    # OOD (recall 0.95, FPR 1/4), then the same mix at -4 (recall 1.0, FPR 2/4), then 2 ID at 0.
    # The point at -5 lies on a straight line with equal steps (+1 ID, +2 OOD) on both sides,
    # so sklearn drops it and the first point with recall >= 0.95 is at -4: FPR = 2/4 = 0.5
    # (the plain definition would give 1/4).
    ids = [-5.0, -4.0, 0.0, 0.0]
    oods = [-10.0] * 36 + [-5.0, -5.0, -4.0, -4.0]
    assert semantic_openood_fpr95(ids, oods) == 0.25
    assert fpr_at_95_tpr(ids, oods, "openood") == 0.5 == reference_openood_fpr95(ids, oods)
    # paper: ID recall 2/4 at t=0, 3/4 at t=-4, 4/4 at t=-5 (nearest 0.95); OOD >= -5: 4 of 40
    assert fpr_at_95_tpr(ids, oods, "paper") == pytest.approx(0.1)


def test_fpr95_default_is_paper() -> None:
    ids, oods = [4, 3, 2, 0], [1, 0.5, -1, -2]
    assert fpr_at_95_tpr(ids, oods) == fpr_at_95_tpr(ids, oods, "paper")
    assert ood_metrics(ids, oods).fpr_convention == "paper"


# --------------------------------------------------------------------------- extremes


@pytest.mark.parametrize("convention", FPR_CONVENTIONS)
def test_perfect_separation(convention: str) -> None:
    m = ood_metrics([5, 6, 7, 8], [1, 2, 3], convention)
    assert (m.auroc, m.fpr95, m.aupr_in, m.aupr_out) == (1.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize("convention", FPR_CONVENTIONS)
def test_reversed(convention: str) -> None:
    # Every OOD score above every ID score: no pair ranked right, and any threshold that
    # keeps 95% of ID (or catches 95% of OOD) lets every OOD through (flags every ID).
    m = ood_metrics([1, 2, 3], [5, 6, 7, 8], convention)
    assert m.auroc == 0.0
    assert m.fpr95 == 1.0


@pytest.mark.parametrize("convention", FPR_CONVENTIONS)
def test_all_scores_equal(convention: str) -> None:
    # One threshold: every sample is above it. AUROC = all pairs tied = 0.5; FPR95 = 1.0.
    # AUPR-In = precision at the only threshold = 3/5; AUPR-Out = 2/5.
    m = ood_metrics([0.3, 0.3, 0.3], [0.3, 0.3], convention)
    assert m.auroc == 0.5
    assert m.fpr95 == 1.0
    assert m.aupr_in == pytest.approx(3 / 5)
    assert m.aupr_out == pytest.approx(2 / 5)


@pytest.mark.parametrize("convention", FPR_CONVENTIONS)
def test_one_ood_sample(convention: str) -> None:
    # ID = 1..20, OOD = [1.5]: AUROC = 19 of 20 ID above it = 0.95.
    # paper: recall 19/20 = 0.95 holds at t = 2 and at t = 1.5; the lowest (1.5) is taken and
    # the OOD sample is >= 1.5 -> 1/1 = 1.0. openood: flag score <= 1.5 -> ID {1} -> 1/20.
    m = ood_metrics(list(np.arange(1.0, 21.0)), [1.5], convention)
    assert m.auroc == pytest.approx(0.95)
    assert m.n_ood == 1 and m.n_id == 20
    assert m.fpr95 == pytest.approx({"paper": 1.0, "openood": 0.05}[convention])


@pytest.mark.parametrize("convention", FPR_CONVENTIONS)
def test_one_id_and_one_ood_sample(convention: str) -> None:
    assert ood_metrics([1.0], [0.0], convention).fpr95 == 0.0
    assert ood_metrics([0.0], [1.0], convention).fpr95 == 1.0


def test_metrics_fields_and_as_dict() -> None:
    m = ood_metrics(np.array([3.0, 2.0], dtype=np.float32), (1.0, 2.5), "openood")
    d = m.as_dict()
    assert d == {
        "auroc": m.auroc,
        "fpr95": m.fpr95,
        "aupr_in": m.aupr_in,
        "aupr_out": m.aupr_out,
        "n_id": 2,
        "n_ood": 2,
        "fpr_convention": "openood",
    }
    assert all(type(d[k]) is float for k in ("auroc", "fpr95", "aupr_in", "aupr_out"))
    with pytest.raises(AttributeError):
        m.auroc = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(int_scores, int_scores)
def test_paper_fpr95_matches_reference_rule(ids: list[float], oods: list[float]) -> None:
    assert fpr_at_95_tpr(ids, oods, "paper") == reference_paper_fpr95(ids, oods)


@settings(max_examples=200, deadline=None)
@given(int_scores, int_scores)
def test_openood_fpr95_matches_reference_code(ids: list[float], oods: list[float]) -> None:
    assert fpr_at_95_tpr(ids, oods, "openood") == reference_openood_fpr95(ids, oods)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-1000, 1000), min_size=2, max_size=60, unique=True).map(
        lambda xs: [float(x) for x in xs]
    ),
    st.data(),
)
def test_openood_fpr95_matches_definition_without_ties(
    values: list[float], data: st.DataObject
) -> None:
    # Without tied scores, sklearn's drop_intermediate never moves the first point with
    # OOD recall >= 0.95 to a different FPR, so the plain definition holds.
    k = data.draw(st.integers(1, len(values) - 1))
    ids, oods = values[:k], values[k:]
    assert fpr_at_95_tpr(ids, oods, "openood") == semantic_openood_fpr95(ids, oods)


@settings(max_examples=100, deadline=None)
@given(int_scores, int_scores, conventions)
def test_fast_path_matches_sklearn(ids: list[float], oods: list[float], convention: str) -> None:
    # The bootstrap's one-sort evaluation agrees with scikit-learn up to float rounding.
    y = np.r_[np.ones(len(ids)), np.zeros(len(oods))]
    scores = np.r_[ids, oods]
    auroc, fpr95, aupr_in, aupr_out = _fast_metrics(np.asarray(ids), np.asarray(oods), convention)
    assert auroc == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert aupr_in == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert aupr_out == pytest.approx(average_precision_score(1 - y, -scores), abs=1e-12)
    assert fpr95 == fpr_at_95_tpr(ids, oods, convention)


@settings(max_examples=100, deadline=None)
@given(int_scores, int_scores)
def test_auroc_matches_pairwise_definition(ids: list[float], oods: list[float]) -> None:
    assert ood_metrics(ids, oods).auroc == pytest.approx(pairwise_auroc(ids, oods))


@settings(max_examples=150, deadline=None)
@given(int_scores, int_scores, st.sampled_from(sorted(INCREASING)), conventions)
def test_invariant_to_increasing_transforms(
    ids: list[float], oods: list[float], transform: str, convention: str
) -> None:
    f = INCREASING[transform]
    values = np.unique(np.r_[ids, oods])
    assume(np.all(np.diff(f(values)) > 0))  # strictly increasing in float64 on these points
    before = ood_metrics(ids, oods, convention)
    after = ood_metrics(f(np.asarray(ids)), f(np.asarray(oods)), convention)
    assert after.auroc == pytest.approx(before.auroc, abs=1e-12)
    assert after.fpr95 == before.fpr95
    assert after.aupr_in == pytest.approx(before.aupr_in, abs=1e-12)
    assert after.aupr_out == pytest.approx(before.aupr_out, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(float_scores, float_scores)
def test_auroc_role_swap_and_negation(ids: list[float], oods: list[float]) -> None:
    a = ood_metrics(ids, oods).auroc
    neg_ids, neg_oods = [-x for x in ids], [-x for x in oods]
    assert ood_metrics(oods, ids).auroc == pytest.approx(1.0 - a, abs=1e-12)  # roles swapped
    assert ood_metrics(neg_ids, neg_oods).auroc == pytest.approx(1.0 - a, abs=1e-12)  # negated
    assert ood_metrics(neg_oods, neg_ids).auroc == pytest.approx(a, abs=1e-12)  # both


@settings(max_examples=100, deadline=None)
@given(float_scores, float_scores)
def test_aupr_out_is_aupr_in_of_swapped_negated(ids: list[float], oods: list[float]) -> None:
    m = ood_metrics(ids, oods)
    swapped = ood_metrics([-x for x in oods], [-x for x in ids])
    assert swapped.aupr_in == pytest.approx(m.aupr_out, abs=1e-12)
    assert swapped.aupr_out == pytest.approx(m.aupr_in, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(float_scores, float_scores, conventions)
def test_metrics_are_fractions(ids: list[float], oods: list[float], convention: str) -> None:
    m = ood_metrics(ids, oods, convention)
    for value in (m.auroc, m.fpr95, m.aupr_in, m.aupr_out):
        assert 0.0 <= value <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=20, max_size=80, unique=True), st.data())
def test_perfect_and_reversed_with_distinct_scores(
    values: list[float], data: st.DataObject
) -> None:
    # Without ties, splitting sorted scores into OOD (low) and ID (high) separates perfectly.
    k = data.draw(st.integers(1, len(values) - 1))
    ordered = sorted(values)
    for convention in FPR_CONVENTIONS:
        assert fpr_at_95_tpr(ordered[k:], ordered[:k], convention) == 0.0
        assert fpr_at_95_tpr(ordered[:k], ordered[k:], convention) == 1.0


# --------------------------------------------------------------------------- ID accuracy


def test_id_accuracy_hand_computed() -> None:
    # predictions [0, 1, 2, 2] vs labels [0, 1, 1, 2]: 3 of 4 right -> 0.75
    assert id_accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert id_accuracy(np.array([7]), np.array([7])) == 1.0


def test_id_accuracy_from_class_scores() -> None:
    # argmax rows: [1, 0, 2] vs labels [1, 2, 2] -> 2 of 3
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.0, 0.2, 0.7]])
    assert id_accuracy(logits, [1, 2, 2]) == pytest.approx(2 / 3)


def test_id_accuracy_errors() -> None:
    with pytest.raises(OODBenchError, match=r"differ in length \(3 vs 2\)"):
        id_accuracy([0, 1, 2], [0, 1])
    with pytest.raises(OODBenchError, match="empty"):
        id_accuracy([], [])
    with pytest.raises(OODBenchError, match="shapes"):
        id_accuracy(np.zeros((2, 2, 2)), [0, 1])


# --------------------------------------------------------------------------- bootstrap

RNG = np.random.default_rng(123)
BOOT_ID = RNG.normal(1.0, 1.0, 300)
BOOT_OOD = RNG.normal(0.0, 1.0, 200)


@pytest.mark.parametrize("convention", FPR_CONVENTIONS)
def test_bootstrap_ci_contains_point_estimate(convention: str) -> None:
    point = ood_metrics(BOOT_ID, BOOT_OOD, convention)
    ci = bootstrap_ci(BOOT_ID, BOOT_OOD, n=200, seed=7, convention=convention)
    assert set(ci) == {"auroc", "fpr95", "aupr_in", "aupr_out"}
    for name, (lo, hi) in ci.items():
        assert 0.0 <= lo <= getattr(point, name) <= hi <= 1.0, name
        assert lo < hi, name


def test_bootstrap_ci_deterministic_for_a_seed() -> None:
    a = bootstrap_ci(BOOT_ID, BOOT_OOD, n=50, seed=3)
    b = bootstrap_ci(list(BOOT_ID), list(BOOT_OOD), n=50, seed=3)
    c = bootstrap_ci(BOOT_ID, BOOT_OOD, n=50, seed=4)
    assert a == b
    assert a != c


def test_bootstrap_ci_narrows_with_larger_alpha() -> None:
    wide = bootstrap_ci(BOOT_ID, BOOT_OOD, n=100, seed=0, alpha=0.05)
    narrow = bootstrap_ci(BOOT_ID, BOOT_OOD, n=100, seed=0, alpha=0.5)
    for name in wide:
        assert wide[name][0] <= narrow[name][0] <= narrow[name][1] <= wide[name][1]


def test_bootstrap_ci_degenerate_inputs() -> None:
    # A single OOD sample and constant ID scores: every resample is identical.
    ci = bootstrap_ci([2.0, 2.0, 2.0], [1.0], n=10)
    assert ci["auroc"] == (1.0, 1.0)
    assert ci["fpr95"] == (0.0, 0.0)


def test_bootstrap_ci_errors() -> None:
    with pytest.raises(OODBenchError, match="n >= 1"):
        bootstrap_ci([1.0], [0.0], n=0)
    with pytest.raises(OODBenchError, match="alpha"):
        bootstrap_ci([1.0], [0.0], n=5, alpha=1.0)
    with pytest.raises(UnknownNameError):
        bootstrap_ci([1.0], [0.0], n=5, convention="nope")


# --------------------------------------------------------------------------- mean


def _m(auroc: float, fpr95: float, convention: str = "paper") -> OODMetrics:
    return OODMetrics(auroc, fpr95, 0.5, 0.25, n_id=10, n_ood=5, fpr_convention=convention)


def test_mean_metrics_is_unweighted() -> None:
    # auroc (0.9 + 0.7) / 2 = 0.8; fpr95 (0.2 + 0.6) / 2 = 0.4 (n_id/n_ood do not weight)
    items = [_m(0.9, 0.2), OODMetrics(0.7, 0.6, 0.5, 0.25, 1000, 1, "paper")]
    assert mean_metrics(items) == pytest.approx(
        {"auroc": 0.8, "fpr95": 0.4, "aupr_in": 0.5, "aupr_out": 0.25}
    )


def test_mean_metrics_errors() -> None:
    with pytest.raises(OODBenchError, match="zero OOD sets"):
        mean_metrics([])
    with pytest.raises(OODBenchError, match="different conventions"):
        mean_metrics([_m(0.9, 0.2, "paper"), _m(0.9, 0.2, "openood")])


# --------------------------------------------------------------------------- input errors


def test_empty_inputs() -> None:
    with pytest.raises(OODBenchError, match="ID scores are empty"):
        ood_metrics([], [1.0])
    with pytest.raises(OODBenchError, match="OOD scores are empty"):
        fpr_at_95_tpr([1.0], np.array([]))


def test_nan_and_inf_scores_are_counted() -> None:
    with pytest.raises(OODBenchError) as info:
        ood_metrics([1.0, float("nan"), float("inf"), float("nan")], [0.0])
    message = str(info.value)
    assert "ID scores contain 3 non-finite values (2 NaN, 1 inf) of 4" in message
    assert "scorer produced them" in message
    assert "\n" not in message
    with pytest.raises(OODBenchError, match=r"OOD scores contain 1 non-finite values \(0 NaN"):
        fpr_at_95_tpr([1.0], [-float("inf"), 0.0], "openood")


def test_unknown_convention() -> None:
    with pytest.raises(UnknownNameError) as info:
        fpr_at_95_tpr([1.0], [0.0], convention="openod")
    message = str(info.value)
    assert "Unknown FPR convention 'openod'" in message
    assert "'openood'" in message and "paper" in message
    assert isinstance(info.value, OODBenchError)
    with pytest.raises(OODBenchError, match="Unknown FPR convention"):
        ood_metrics([1.0], [0.0], convention="Paper")


def test_bad_shapes_and_types() -> None:
    with pytest.raises(OODBenchError, match=r"1-D .* shape \(2, 2\)"):
        ood_metrics(np.zeros((2, 2)), [0.0])
    with pytest.raises(OODBenchError, match="shape \\(\\)"):
        ood_metrics(1.0, [0.0])
    with pytest.raises(OODBenchError, match="real numbers"):
        ood_metrics(["a", "b"], [0.0])

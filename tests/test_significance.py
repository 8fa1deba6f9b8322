"""The paired bootstrap (oodbench.significance): constructed score sets with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from oodbench.errors import RecordError
from oodbench.significance import (
    ScoreSet,
    auroc,
    paired_bootstrap,
    read_scores,
    scores_path,
    write_scores,
)


def scores(id_scores, **ood) -> ScoreSet:
    return ScoreSet(np.atleast_2d(np.asarray(id_scores, float)),
                    {k: np.atleast_2d(np.asarray(v, float)) for k, v in ood.items()})


def test_auroc_is_scikit_learns_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        id_s, ood_s = rng.integers(0, 6, 25).astype(float), rng.integers(0, 6, 17).astype(float)
        expected = roc_auc_score(np.r_[np.ones(25), np.zeros(17)], np.r_[id_s, ood_s])
        assert auroc(id_s, ood_s) == pytest.approx(expected, abs=1e-12)
    assert auroc([1.0, 0.0], [0.0]) == 0.75  # one win, one tie: (1 + 1/2) / 2


def test_identical_scores_are_not_significant():
    rng = np.random.default_rng(1)
    a = scores(rng.normal(1, 1, 200), x=rng.normal(0, 1, 150), y=rng.normal(0, 1, 90))
    result = paired_bootstrap(a, a)
    assert (result.delta, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert result.verdict == "n.s."


def test_a_clearly_separated_pair_is_significant_both_ways():
    rng = np.random.default_rng(2)
    id_s, ood_s = rng.normal(0, 1, 300), rng.normal(0, 1, 200)
    perfect = scores(id_s + 10, x=ood_s)  # AUROC 1
    chance = scores(id_s, x=ood_s)  # AUROC about 0.5
    better = paired_bootstrap(perfect, chance, resamples=500)
    assert better.verdict == "better" and better.low > 0.3
    assert better.delta == pytest.approx(1 - auroc(id_s, ood_s))
    assert better.p_value == pytest.approx(2 / 501)  # no replicate at or below 0
    worse = paired_bootstrap(chance, perfect, resamples=500)
    assert worse.verdict == "worse" and worse.high < -0.3 and worse.delta == -better.delta


def test_small_case_by_hand():
    """One ID image (0.5) and two OOD images: A ranks both OOD images below it, B only the
    first. Resampling the OOD pair gives (first, first) with probability 1/4 (difference 0),
    one of each with 1/2 (difference 1/2) and (second, second) with 1/4 (difference 1): so the
    interval is [0, 1], P(d <= 0) = 1/4, the p-value 2 * 1/4 = 1/2 and the full-sample
    difference 1/2."""
    a, b = scores([0.5], s=[0.2, 0.4]), scores([0.5], s=[0.2, 0.9])
    result = paired_bootstrap(a, b, resamples=4000, seed=3)
    assert result.delta == 0.5 and (result.low, result.high) == (0.0, 1.0)
    assert result.p_value == pytest.approx(0.5, abs=0.04)
    assert result.verdict == "n.s."


def test_means_over_sets_and_generations_like_the_record():
    a = ScoreSet(np.array([[0.9, 0.8], [0.9, 0.1]]),
                 {"x": np.array([[0.5], [0.5]]), "y": np.array([[0.85], [0.0]])})
    b = scores([0.5, 0.5], x=[0.5], y=[0.5])
    # a: x 1 and 0.5 (mean 0.75), y 0.5 and 1 (0.75); b: 0.5 on both sets
    assert a.auroc("x") == 0.75 and a.auroc("y") == 0.75
    assert paired_bootstrap(a, b, resamples=50).delta == pytest.approx(0.25)
    assert paired_bootstrap(a, b, ["x"], resamples=50).delta == pytest.approx(0.25)


def test_same_seed_same_answer_and_other_images_are_refused():
    rng = np.random.default_rng(4)
    a = scores(rng.normal(1, 1, 50), x=rng.normal(0, 1, 40))
    b = scores(rng.normal(1, 1, 50), x=rng.normal(0, 1, 40))
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    with pytest.raises(RecordError, match="scored 50 and 49 images of id"):
        paired_bootstrap(a, scores(rng.normal(1, 1, 49), x=rng.normal(0, 1, 40)))
    with pytest.raises(RecordError, match="missing: y"):
        paired_bootstrap(a, b, ["x", "y"])
    other = ScoreSet(b.id, b.ood, images="other")
    with pytest.raises(RecordError, match="different images"):
        paired_bootstrap(ScoreSet(a.id, a.ood, images="mine"), other)


def test_sidecar_round_trip_and_bad_files(tmp_path):
    record = tmp_path / "mcm--offline-far--mini.json"
    path = write_scores(record, np.float32([0.3, 0.2]), {"x": [0.1], "y": [[0.4, 0.0]]},
                        images="abc")
    assert path == scores_path(record) == tmp_path / "mcm--offline-far--mini.scores.npz"
    back = read_scores(path)
    assert back.id.dtype == np.float32 and back.id.tolist() == [[np.float32(0.3),
                                                                  np.float32(0.2)]]
    assert sorted(back.ood) == ["x", "y"] and back.images == "abc" and back.generations == 1
    with pytest.raises(RecordError, match="one row per generation"):
        write_scores(record, [[0.3], [0.2]], {"x": [0.1]})
    with pytest.raises(RecordError, match="non-finite"):
        write_scores(record, [0.3, np.nan], {"x": [0.1]})
    path.write_bytes(b"not a zip")
    with pytest.raises(RecordError, match="is not a readable scores file") as info:
        read_scores(path)
    assert "\n" not in str(info.value)


def test_auroc_intervals_from_the_scores():
    from oodbench.significance import auroc_intervals

    rng = np.random.default_rng(1)
    separated = ScoreSet(id=np.arange(50.0)[None] + 100, ood={"far": np.arange(60.0)[None]})
    mixed = ScoreSet(id=rng.normal(0.5, 1, (1, 300)), ood={"near": rng.normal(0, 1, (1, 400))})
    assert auroc_intervals(separated) == {"far": (1.0, 1.0)}  # every resample separates
    (low, high), estimate = auroc_intervals(mixed)["near"], mixed.auroc("near")
    assert low < estimate < high and 0.03 < high - low < 0.12  # ~±2.3 points at these sizes
    assert auroc_intervals(mixed) == auroc_intervals(mixed)  # seeded

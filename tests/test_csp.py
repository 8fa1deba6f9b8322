"""CSP (conjugated semantic pool): the pool construction by hand on a tiny WordNet-like input,
the mining rule, the pool sizes on the real WordNet 3.0, and a run on the toy colour suite."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from oodbench.labels.csp import (
    ADJECTIVE_TEMPLATES,
    NOUN_TEMPLATES,
    SUPERCLASSES,
    CSPMining,
    conjugate,
    csp_distance,
    csp_pools,
    lowest,
)

TINY = {  # lexicographer file -> head words, as in CSP's txtfiles/
    "noun.act": ["running", "sleep", "red_wine"],
    "noun.Tops": ["entity", "sleep"],
    "noun.person": ["doctor"],       # excluded by CSP
    "noun.group": ["team"],          # excluded by CSP
    "adj.all": ["red", "sleep", "quick"],
    "adj.pert": ["solar"],           # excluded by CSP
    "adj.ppl": ["quick", "broken"],
    "verb.motion": ["run"],          # not a noun or adjective file
}
EXCLUDED = {"noun.person", "noun.quantity", "noun.group", "adj.pert"}


def test_pool_construction_by_hand():
    pools = csp_pools(TINY, EXCLUDED)
    # sorted file names: adj.all, adj.ppl, noun.Tops, noun.act ("T" sorts before "a"); one
    # de-duplication over all files, so "sleep" is an adjective (adj.all came first)
    assert pools == {"adjective": ["red", "sleep", "quick", "broken"],
                     "noun": ["entity", "running", "red wine"]}
    # each adjective + a superclass drawn in order by random.Random(seed).choice
    rng = random.Random(0)
    expected = [f"{a} {rng.choice(SUPERCLASSES)}" for a in pools["adjective"]]
    assert conjugate(pools["adjective"], 0) == expected
    assert expected == ["red creature", "sleep area", "quick vista", "broken area"]
    assert conjugate(pools["adjective"], 1) != expected  # the seed changes the pairing


def test_mining_rule_by_hand():
    ids = torch.eye(3)[:2]  # two ID labels along axes 0 and 1
    s = np.sqrt(0.5)
    candidates = torch.tensor([[1.0, 0, 0],    # a copy of ID label 0: max cos 1 > 0.95
                               [s, 0, s],      # cosines (.71, 0): median .354
                               [0, 0, 1.0],    # cosines (0, 0): median 0
                               [0, -s, s]])    # cosines (0, -.71): median -.354
    distance = csp_distance(candidates, ids, 0.5, 0.95)
    assert distance.tolist() == pytest.approx([1.0, s / 2, 0.0, -s / 2])
    assert lowest(distance, 0.5).tolist() == [3, 2]  # int(0.5 x 4) = 2 lowest
    assert lowest(distance, 0.6).tolist() == [3, 2]  # int(2.4) = 2, as the official code
    # with the ceiling above 1 the copy is ranked by its quantile (.5 of (1, 0) = .5)
    assert csp_distance(candidates, ids, 0.5, 1.01)[0] == pytest.approx(0.5)


def test_templates_are_the_official_ones():
    assert len(NOUN_TEMPLATES) == 8 and "the nice {}" in NOUN_TEMPLATES and "{}" in NOUN_TEMPLATES
    assert ADJECTIVE_TEMPLATES[0] == "{}" and len(ADJECTIVE_TEMPLATES) == 4
    assert len(SUPERCLASSES) == 14 and SUPERCLASSES[-1] == "creature"


def test_csp_pool_sizes_on_real_wordnet():
    """CSP's pool from WordNet 3.0: NegLabel's 24 noun + 3 adjective files without noun.person,
    noun.quantity, noun.group and adj.pert, read in sorted name order with one de-duplication.

    WordNet 3.0 gives 46,446 nouns + 11,047 adjectives, so an ImageNet-1K bank keeps
    int(0.15 x 46,446) + int(0.15 x 11,047) = 6,966 + 1,657 = 8,623 negatives. The released
    word lists (a later English WordNet) give 46,560 + 10,060 -> 6,984 + 1,509 = 8,493, the
    count of the paper (README of the baselines).
    """
    from oodbench.labels import wordnet

    try:
        wordnet.wordnet_dir()
    except Exception as exc:
        pytest.skip(f"WordNet not installed ({exc})")
    pools = CSPMining().full_pools()
    nouns, adjectives = pools["noun"], pools["adjective"]
    assert (len(nouns), len(adjectives)) == (46_446, 11_047)
    assert int(0.15 * len(nouns)) + int(0.15 * len(adjectives)) == 8_623
    assert not set(nouns) & set(adjectives)
    assert "surgeon" not in nouns and "carpenter" not in nouns  # noun.person left out
    assert "solar" not in adjectives  # adj.pert left out
    assert "entity" in nouns and adjectives[0] == "able"


def test_csp_on_the_colour_suite(registry, colour_suite, tmp_path):
    from oodbench.runner import RunRequest, run
    from oodbench.types import RunContext

    words = tmp_path / "words"
    words.mkdir()
    (words / "noun.act.txt").write_text("yellow\nmagenta\nred\ntable\n")  # "red" is an ID name
    (words / "adj.all.txt").write_text("orange\npurple\ncyan\n")
    ctx = RunContext(cache_dir=tmp_path / "cache")
    params = {"word_lists": str(words), "keep_fraction": "0.75", "ngroup": "1"}
    record = run(RunRequest("csp", str(colour_suite), params=params), ctx, registry)
    meta = record["labels"]
    # int(0.75 x 4) = 3 nouns ("red" is a copy of an ID label: distance 1, last) + 2 adjectives
    assert meta["count"] == 3 + 2
    assert meta["generator"] == "csp-mining" and meta["meta"]["seed"] == 0
    pools = json.loads(meta["meta"]["pools"])
    assert pools["noun"] == {"candidates": 4, "kept": 3, "too_close": 1}  # "red"
    assert pools["adjective"] == {"candidates": 3, "kept": 2, "too_close": 0}
    assert record["metrics"]["secondary"]["auroc"] == 1.0  # yellow/magenta are now labels
    again = run(RunRequest("csp", str(colour_suite), params=params), ctx, registry)
    assert again["cache"]["texts_encoded"] == 0  # bank and embeddings from the cache
    assert again["metrics"] == record["metrics"]


def test_the_paper_ensembles_are_the_defaults_on_every_suite():
    from oodbench.baselines.csp import CSPScorer
    from oodbench.standins import substitutions, with_paper_settings

    # the same 8 templates for the ID labels and the nouns, 4 for the conjugated adjectives
    assert CSPMining().noun_templates == CSPScorer().id_templates == list(NOUN_TEMPLATES)
    assert CSPMining().adjective_templates == list(ADJECTIVE_TEMPLATES)
    assert with_paper_settings(CSPMining, {}, real=True) == {}  # nothing left to fill in
    assert with_paper_settings(CSPScorer, {}, real=True) == {}
    assert substitutions([("label_generator", CSPMining()), ("scorer", CSPScorer())]) == {}

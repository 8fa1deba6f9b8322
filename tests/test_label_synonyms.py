"""The synonym filters of label banks (oodbench.labels.synonyms): WordNet relations and text
embeddings."""

from __future__ import annotations

import pytest


def _wordnet_or_skip() -> None:
    from oodbench.labels import wordnet

    try:
        wordnet.wordnet_dir()
    except Exception as exc:
        pytest.skip(f"WordNet not installed ({exc})")


def test_wordnet_synonym_filter_on_dog():
    from oodbench.labels.synonyms import drop_wordnet_synonyms

    _wordnet_or_skip()
    # WordNet 3.0: dog = {dog, domestic dog, Canis familiaris} < canine < ... < animal;
    # puppy and poodle are hyponyms; "hot dog" is another sense, "pup" a young mammal
    labels = ["domestic dog", "canis familiaris", "puppy", "poodle", "canine", "animal",
              "hot dog", "pup", "wolf", "cat"]
    kept, dropped = drop_wordnet_synonyms(labels, ["dog"])
    assert dropped == ["domestic dog", "canis familiaris", "puppy", "poodle", "canine", "animal"]
    assert kept == ["hot dog", "pup", "wolf", "cat"]
    assert drop_wordnet_synonyms(["qwxz"], ["not-a-wordnet-noun-xyz"]) == (["qwxz"], [])


def test_embedding_synonym_filter_threshold():
    import torch

    from oodbench.labels.synonyms import drop_embedding_near

    ids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    feats = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, 1.0], [0.2, 1.0]]))
    # cosines to the nearest ID class: 0.995, 0.707, 0.981
    assert drop_embedding_near(["a", "b", "c"], feats, ids, 0.95) == (["b"], ["a", "c"])
    assert drop_embedding_near(["a", "b", "c"], feats, ids, 0.99) == (["b", "c"], ["a"])
    assert drop_embedding_near([], feats[:0], ids, 0.5) == ([], [])

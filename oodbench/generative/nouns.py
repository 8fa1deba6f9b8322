"""WordNet's familiar concrete nouns: the vocabulary of offline stand-ins for language models.

The offline ``vocabulary`` describer ranks these nouns by image-text similarity; a label
generator that answers from WordNet instead of an LLM can draw from the same pool.
"""

from __future__ import annotations

from oodbench.labels import wordnet

# WordNet lexicographer files of things one can photograph
CONCRETE = {"noun.animal", "noun.artifact", "noun.food", "noun.object", "noun.plant",
            "noun.body", "noun.substance", "noun.phenomenon"}


def concrete_nouns() -> list[tuple[str, int]]:
    """Familiar concrete nouns as sorted (lemma, synset offset) pairs: lemmas of at most three
    ASCII words with at least one sense-tagged use, whose first noun sense is concrete."""
    nouns, index = wordnet.load_synsets()["n"], wordnet.noun_index()
    pool = []
    for lemma, (tagged, offsets) in index.items():
        if tagged < 1 or len(lemma.split()) > 3 or not lemma.isascii():
            continue
        first = next((nouns[o] for o in offsets if o in nouns), None)
        if first is not None and first.lexfile in CONCRETE:
            pool.append((lemma, first.offset))
    return sorted(pool)

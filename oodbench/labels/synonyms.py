"""Opt-in filters that drop outlier labels naming an ID class under another name.

EOE's own filters drop exact ID names (near: also shared words). A synonym such as "domestic
dog" for the ID class "dog" passes them, then competes with that class for its own images.

* ``wordnet``: drop a label that is a lemma of the ID name's first noun sense (the sense the
  knowledge envisioner uses), of any of its hypernyms (a superclass: "canine", "animal") or of
  any of its hyponyms (a kind of it: "puppy", "poodle"), transitively, case-insensitively;
* ``embedding``: drop a label whose text embedding has cosine > threshold with an ID class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from oodbench.labels import wordnet

SYNONYM_FILTERS = ("none", "wordnet", "embedding", "both")


def wordnet_related(id_names: Sequence[str]) -> set[str]:
    """Lowercase lemmas of the ID names' first noun senses, their hypernyms and hyponyms."""
    nouns, children = wordnet.load_synsets()["n"], wordnet.hyponyms()
    related: set[str] = set()
    for name in id_names:
        synset = wordnet.first_noun_sense(name)
        if synset is None:  # not in WordNet: only EOE's exact-name filter applies
            continue
        nodes = set(wordnet.ancestors(synset.offset))  # the sense itself and every hypernym
        stack = list(children.get(synset.offset, []))
        while stack:  # every hyponym below it
            node = stack.pop()
            if node not in nodes:
                nodes.add(node)
                stack += children.get(node, [])
        related |= {w.lower() for n in nodes if n in nouns for w in nouns[n].words}
    return related


def drop_wordnet_synonyms(labels: Sequence[str], id_names: Sequence[str]
                          ) -> tuple[list[str], list[str]]:
    """(kept, dropped): ``dropped`` are WordNet synonyms, hypernyms or hyponyms of an ID name."""
    related = wordnet_related(id_names)
    kept = [x for x in labels if x.lower() not in related]
    return kept, [x for x in labels if x.lower() in related]


def drop_embedding_near(labels: Sequence[str], label_features: torch.Tensor,
                        id_features: torch.Tensor, threshold: float
                        ) -> tuple[list[str], list[str]]:
    """(kept, dropped): ``dropped`` have cosine > ``threshold`` with some ID class.

    Both feature matrices are L2-normalised rows (as ``MethodEnv.text_features`` returns).
    """
    if not labels:
        return [], []
    near = ((label_features.float() @ id_features.float().T).max(dim=1).values > threshold)
    flags = near.tolist()
    return ([x for x, f in zip(labels, flags, strict=True) if not f],
            [x for x, f in zip(labels, flags, strict=True) if f])

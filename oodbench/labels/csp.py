"""CSP's negative labels (Chen et al., Conjugated Semantic Pool, NeurIPS 2024).

NegLabel's mining (:class:`~oodbench.labels.generators.NegLabelMining`) with the changes of the
official code (``MengyuanChen21/NeurIPS2024-CSP``, ``CLIPScalableClassifier``):

* word pool: NegLabel's lists without ``noun.person``, ``noun.quantity``, ``noun.group`` and
  ``adj.pert`` (21 noun files + ``adj.all``, ``adj.ppl``), one de-duplication over all files,
  read in sorted file-name order (adjective files first);
* the conjugated semantic pool: each adjective becomes "<adjective> <superclass>", the superclass
  word drawn from :data:`SUPERCLASSES` by ``random.Random(seed).choice`` in pool order (the
  official ``random.seed(0)``; the seed is the run's), e.g. "white creature";
* prompt ensembles: ID names and nouns averaged over :data:`NOUN_TEMPLATES` (8), conjugated
  adjectives over :data:`ADJECTIVE_TEMPLATES` (4), the paper setting, on every suite (with
  the mini text tower: ~416k texts per generation, ~14 minutes on 2 CPU cores the first time,
  cached after);
* mining: d = the ``percentile`` quantile of a candidate's cosine to the ID labels, d = 1 (never
  kept) when its largest cosine exceeds ``max_similarity``; the ``keep_fraction`` lowest of each
  pool are kept (``int(fraction * pool size)``, as the official code).

Counts and the remaining departures are in ``oodbench/baselines/README.md``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import torch

from oodbench.cache import content_key
from oodbench.env import MethodEnv
from oodbench.interfaces import LabelGenerator
from oodbench.labels import wordnet
from oodbench.labels.bank import cached_bank
from oodbench.labels.generators import (
    ADJECTIVE,
    NOUN,
    WordNetCandidates,
    _subsample,
    read_word_lists,
)
from oodbench.types import LabelBank

NOUN_TEMPLATES = (
    "a close-up photo of the nice {}.", "a photo with the nice {}.",
    "a good photo with the nice {}.", "a photo of the nice {}.", "{}", "the {}", "the good {}",
    "the nice {}",
)
ADJECTIVE_TEMPLATES = ("{}", "a nice photo of {}", "a good photo of {}",
                       "a close-up photo of {}")
SUPERCLASSES = ("environment", "space", "object", "scene", "place", "item", "area", "view",
                "thing", "pattern", "structure", "landscape", "vista", "creature")
CSP_EXCLUDED_LEXFILES = ("noun.person", "noun.quantity", "noun.group", "adj.pert")
_NEGLABEL_MISSING = ("noun.animal", "noun.food")  # not among NegLabel's / CSP's word lists


def csp_pools(files: dict[str, list[str]], excluded: set[str]) -> dict[str, list[str]]:
    """Nouns and adjectives of the lexicographer ``files`` (name -> words), files read in sorted
    name order with one de-duplication over all of them; ``excluded`` files are skipped."""
    seen: dict[str, None] = {}
    pools: dict[str, list[str]] = {NOUN: [], ADJECTIVE: []}
    for name in sorted(files):
        if name in excluded or not name.startswith(("noun.", "adj.")):
            continue
        pool = NOUN if name.startswith("noun.") else ADJECTIVE
        for word in files[name]:
            word = word.replace("_", " ").strip()
            if word and word not in seen:
                seen[word] = None
                pools[pool].append(word)
    return pools


def conjugate(adjectives: list[str], seed: int) -> list[str]:
    """"<adjective> <superclass>" for each adjective, superclasses drawn in order by
    ``random.Random(seed).choice`` (the official ``random.choice`` after ``random.seed``)."""
    rng = random.Random(seed)
    return [f"{adjective} {rng.choice(SUPERCLASSES)}" for adjective in adjectives]


def csp_distance(candidates: torch.Tensor, id_feats: torch.Tensor, q: float, ceiling: float,
                 chunk: int = 4096) -> np.ndarray:
    """Per candidate, the q-quantile of its cosine to the ID embeddings, or 1.0 when its
    largest cosine exceeds ``ceiling`` (near-copies of an ID label are never kept)."""
    out = []
    for start in range(0, candidates.shape[0], chunk):
        sims = candidates[start : start + chunk].float() @ id_feats.float().T
        distance = torch.quantile(sims, q, dim=1)
        distance[sims.max(dim=1).values > ceiling] = 1.0
        out.append(distance)
    return torch.cat(out).numpy() if out else np.zeros(0)


def lowest(distance: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the ``int(fraction * len)`` smallest distances, ties in pool order."""
    return np.argsort(distance, kind="stable")[: int(fraction * len(distance))]


@dataclasses.dataclass
class CSPMining(LabelGenerator):
    """CSP: NegLabel's mining on a narrower noun pool plus conjugated adjective labels."""

    name = "csp-mining"
    description = ("CSP negatives: WordNet nouns + 'adjective superclass' labels mined far from "
                   "the ID labels.")
    percentile: float = 0.95
    keep_fraction: float = 0.15
    max_similarity: float = 0.95
    exclude_lexfiles: list[str] = dataclasses.field(
        default_factory=lambda: list(CSP_EXCLUDED_LEXFILES))
    max_per_pool: int = 0  # 0 = every word; else a seeded subsample (quick runs, tests)
    word_lists: str = ""  # a folder of CSP's txtfiles/ replacing WordNet 3.0
    generations: int = 1  # independent pairings (seeds seed..seed+N-1), averaged by the runner
    # ID names and nouns / conjugated adjectives: the paper's 8 and 4 templates, on every suite
    noun_templates: list[str] = dataclasses.field(default_factory=lambda: list(NOUN_TEMPLATES))
    adjective_templates: list[str] = dataclasses.field(
        default_factory=lambda: list(ADJECTIVE_TEMPLATES))

    def full_pools(self) -> dict[str, list[str]]:
        """The candidate words of every suite (before the conjugation)."""
        if self.word_lists:
            files = read_word_lists(Path(self.word_lists).expanduser())
        else:
            files = {**wordnet.synset_heads("n"), **wordnet.synset_heads("a")}
        return csp_pools(files, {*self.exclude_lexfiles, *_NEGLABEL_MISSING})

    def generate(self, env: MethodEnv) -> LabelBank:
        source = content_key(self.full_pools()) if self.word_lists else "wordnet-3.0"
        key = env.key("labels", self.name, self.params(), source, env.ctx.seed)
        return cached_bank(env.cache, key, lambda: self._mine(env), env.log,
                           reuse=env.reuse("labels"))

    def _mine(self, env: MethodEnv) -> LabelBank:
        pools = self.full_pools()
        rng = env.rng("csp-subsample")
        words = {pool: _subsample(items, self.max_per_pool, rng) for pool, items in pools.items()}
        words[ADJECTIVE] = conjugate(words[ADJECTIVE], env.ctx.seed)
        templates = {NOUN: list(self.noun_templates), ADJECTIVE: list(self.adjective_templates)}
        id_feats = env.id_text_features(list(self.noun_templates))
        labels: list[str] = []
        groups: list[str] = []
        counts = {}
        for pool, items in words.items():
            env.log(f"csp-mining: embedding {len(items)} {pool} candidates x "
                    f"{len(templates[pool])} templates")
            feats = self._embed(env, pool, items, templates[pool])
            distance = csp_distance(feats, id_feats, self.percentile, self.max_similarity)
            chosen = lowest(distance, self.keep_fraction)
            labels += [items[i] for i in chosen]
            groups += [pool] * len(chosen)
            counts[pool] = {"candidates": len(items), "kept": len(chosen),
                            "too_close": int((distance == 1.0).sum())}
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source=self.word_lists or "WordNet 3.0 (CSP pool)",
                         templates=templates[NOUN], groups=groups, group_templates=templates,
                         meta={"pools": json.dumps(counts), "seed": env.ctx.seed})

    def _embed(self, env: MethodEnv, pool: str, words: list[str],
               templates: list[str]) -> torch.Tensor:
        """Embeddings of ``words``; WordNet nouns are rows of NegLabel's noun pool (a superset),
        so the embeddings NegLabel cached for "the nice {}" serve CSP too (every text's
        embedding depends on that text alone)."""
        if pool == NOUN and not self.word_lists and not self.max_per_pool:
            full = WordNetCandidates(pool="neglabel").full_pools()[NOUN]
            row = {word: i for i, word in enumerate(full)}
            if all(word in row for word in words):
                feats = env.store.label_embeddings(env.backbone, full, templates, env.ctx)
                return feats[torch.tensor([row[w] for w in words], dtype=torch.long)]
        return env.store.label_embeddings(env.backbone, words, templates, env.ctx)

"""Built-in label generators: all WordNet candidates, NegLabel's negative mining, a user file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from oodbench.env import MethodEnv
from oodbench.errors import MissingDataError
from oodbench.interfaces import LabelGenerator
from oodbench.labels import wordnet
from oodbench.labels.bank import cached_bank
from oodbench.types import LabelBank

NOUN, ADJECTIVE = "noun", "adjective"


def without_id_names(labels: list[str], id_classes: tuple[str, ...]) -> list[str]:
    """Drop labels equal to an ID class name (case-insensitive)."""
    banned = {c.lower().strip() for c in id_classes}
    return [label for label in labels if label.lower().strip() not in banned]


def _subsample(labels: list[str], limit: int, rng: np.random.Generator) -> list[str]:
    if limit <= 0 or limit >= len(labels):
        return labels
    keep = np.sort(rng.choice(len(labels), size=limit, replace=False))
    return [labels[i] for i in keep]


@dataclasses.dataclass
class WordNetCandidates:
    """The WordNet candidate pools shared by the generators below."""

    use_adjectives: bool = True
    exclude_lexfiles: list[str] = dataclasses.field(default_factory=list)
    max_per_pool: int = 0  # 0 = every lemma; else a seeded subsample (quick runs, tests)

    def full_pools(self) -> dict[str, list[str]]:
        """Every lemma of the selected lexicographer files: the same for every suite."""
        excluded = set(self.exclude_lexfiles)
        nouns = set(wordnet.NOUN_LEXFILES.values()) - excluded
        pools = {NOUN: wordnet.lemmas("n", nouns)}
        if self.use_adjectives:
            pools[ADJECTIVE] = wordnet.lemmas("a", set(wordnet.ADJ_LEXFILES.values()) - excluded)
        return pools

    def pools(self, env: MethodEnv) -> dict[str, list[str]]:
        rng = env.rng("wordnet-subsample")
        return {name: _subsample(without_id_names(words, env.suite.classes), self.max_per_pool,
                                 rng) for name, words in self.full_pools().items()}

    def embed(self, env: MethodEnv, pool: str, words: list[str], template: str) -> torch.Tensor:
        """Embeddings of ``words`` (a subset of ``pool``), cached once per backbone for all
        suites: the full pool (~120k nouns) is embedded and the rows are picked, so a second
        suite's mining (whose ID names remove other words) encodes nothing."""
        if self.max_per_pool:
            return env.store.label_embeddings(env.backbone, words, [template], env.ctx)
        full = self.full_pools()[pool]
        feats = env.store.label_embeddings(env.backbone, full, [template], env.ctx)
        row = {word: i for i, word in enumerate(full)}
        return feats[torch.tensor([row[w] for w in words], dtype=torch.long)]


@dataclasses.dataclass
class WordNetLabels(LabelGenerator):
    """Every WordNet noun (and adjective) lemma except the ID class names."""

    name = "wordnet"
    description = "All WordNet 3.0 noun/adjective lemmas (minus ID names) as candidate labels."
    use_adjectives: bool = False
    exclude_lexfiles: list[str] = dataclasses.field(default_factory=list)
    max_per_pool: int = 0
    noun_template: str = "a photo of a {}."
    adjective_template: str = "This is a {} photo"

    def generate(self, env: MethodEnv) -> LabelBank:
        pools = WordNetCandidates(self.use_adjectives, self.exclude_lexfiles,
                                  self.max_per_pool).pools(env)
        labels = [w for words in pools.values() for w in words]
        groups = [g for g, words in pools.items() for _ in words]
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source="WordNet 3.0", templates=[self.noun_template], groups=groups,
                         group_templates={NOUN: [self.noun_template],
                                          ADJECTIVE: [self.adjective_template]})


@dataclasses.dataclass
class NegLabelMining(LabelGenerator):
    """NegLabel's NegMining (Jiang et al., ICLR'24).

    For each candidate, d = the ``percentile`` quantile of its text-text cosine to the ID
    labels; the ``keep_fraction`` candidates with the lowest d are kept, separately among
    nouns and adjectives (10,499 negatives for ImageNet-1K with the full WordNet pools).
    """

    name = "neglabel-mining"
    description = "NegLabel negative mining: WordNet words farthest from the ID labels."
    percentile: float = 0.95
    keep_fraction: float = 0.15
    id_template: str = "the nice {}"
    noun_template: str = "the nice {}"
    adjective_template: str = "This is a {} photo"
    use_adjectives: bool = True
    exclude_lexfiles: list[str] = dataclasses.field(default_factory=list)
    max_per_pool: int = 0

    def generate(self, env: MethodEnv) -> LabelBank:
        key = env.key("labels", self.name, self.params())
        return cached_bank(env.cache, key, lambda: self._mine(env), env.log,
                           reuse=env.reuse("labels"))

    def _mine(self, env: MethodEnv) -> LabelBank:
        source = WordNetCandidates(self.use_adjectives, self.exclude_lexfiles, self.max_per_pool)
        candidates = source.pools(env)
        id_feats = env.id_text_features([self.id_template])
        templates = {NOUN: self.noun_template, ADJECTIVE: self.adjective_template}
        labels: list[str] = []
        groups: list[str] = []
        counts = {}
        for pool, words in candidates.items():
            env.log(f"neglabel-mining: embedding {len(words)} {pool} candidates")
            feats = source.embed(env, pool, words, templates[pool])
            distance = percentile_similarity(feats, id_feats, self.percentile)
            keep = int(self.keep_fraction * len(words))
            chosen = np.argsort(distance, kind="stable")[:keep]
            labels += [words[i] for i in chosen]
            groups += [pool] * len(chosen)
            counts[pool] = {"candidates": len(words), "kept": len(chosen)}
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source="WordNet 3.0", templates=[self.noun_template], groups=groups,
                         group_templates={NOUN: [self.noun_template],
                                          ADJECTIVE: [self.adjective_template]},
                         meta={"pools": json.dumps(counts)})


def percentile_similarity(candidates: torch.Tensor, id_feats: torch.Tensor, q: float,
                          chunk: int = 4096) -> np.ndarray:
    """Per candidate, the q-quantile of its cosine to the ID embeddings (chunked for memory)."""
    out = []
    for start in range(0, candidates.shape[0], chunk):
        sims = candidates[start : start + chunk].float() @ id_feats.float().T
        out.append(torch.quantile(sims, q, dim=1))
    return torch.cat(out).numpy() if out else np.zeros(0)


@dataclasses.dataclass
class FileLabels(LabelGenerator):
    """Labels from a file: a label bank JSON, or a text file with one label per line."""

    name = "file"
    description = "Labels from a user file (label bank JSON or one label per line)."
    path: str = ""
    template: str = "a photo of a {}."

    def generate(self, env: MethodEnv) -> LabelBank:
        path = Path(self.path).expanduser()
        if not self.path or not path.exists():
            raise MissingDataError(f"Label file {self.path!r} does not exist; pass "
                                   f"-p label_generator.path=FILE.")
        if path.suffix == ".json":
            return LabelBank.load(path)
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        labels = without_id_names(list(dict.fromkeys(x for x in lines if x)), env.suite.classes)
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source=str(path), templates=[self.template])

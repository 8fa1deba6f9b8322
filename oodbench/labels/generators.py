"""Built-in label generators: all WordNet candidates, NegLabel's negative mining, a user file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from oodbench.cache import content_key
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


# The candidate pools (parameter ``pool``):
# - "neglabel": NegLabel's released word lists: 24 noun lexicographer files (noun.animal and
#   noun.food are not among them) + adj.all, adj.pert, adj.ppl, one entry per synset (its first
#   lemma, lower-cased), de-duplicated across all files as they are read (nouns first).
# - "all-lemmas": every lemma of all 26 noun files (+ the adjective files), case kept,
#   de-duplicated within each pool: about twice as many candidates.
Pool = Literal["neglabel", "all-lemmas"]
NEGLABEL_EXCLUDED_LEXFILES = ("noun.animal", "noun.food")


def read_word_lists(folder: Path) -> dict[str, list[str]]:
    """``<lexfile>.txt`` word lists (NegLabel's ``txtfiles/`` layout), one word per line."""
    if not folder.is_dir():
        raise MissingDataError(f"Word-list folder {str(folder)!r} does not exist; pass the "
                               f"folder holding noun.*.txt and adj.*.txt as word_lists=DIR.")
    out = {}
    for name in (*wordnet.NOUN_LEXFILES.values(), *wordnet.ADJ_LEXFILES.values()):
        path = folder / f"{name}.txt"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            out[name] = list(dict.fromkeys(x.strip() for x in lines if x.strip()))
    if not out:
        raise MissingDataError(f"No noun.*.txt / adj.*.txt word lists in {str(folder)!r}.")
    return out


@dataclasses.dataclass
class WordNetCandidates:
    """The WordNet candidate pools shared by the generators below."""

    use_adjectives: bool = True
    exclude_lexfiles: list[str] = dataclasses.field(default_factory=list)
    max_per_pool: int = 0  # 0 = every word; else a seeded subsample (quick runs, tests)
    pool: Pool = "all-lemmas"
    word_lists: str = ""  # a folder of <lexfile>.txt lists replacing WordNet (pool "neglabel")
    drop_id_names: bool = True

    def full_pools(self) -> dict[str, list[str]]:
        """Every candidate of the selected lexicographer files: the same for every suite."""
        if self.pool == "neglabel":
            return self._neglabel_pools()
        excluded = set(self.exclude_lexfiles)
        nouns = set(wordnet.NOUN_LEXFILES.values()) - excluded
        pools = {NOUN: wordnet.lemmas("n", nouns)}
        if self.use_adjectives:
            pools[ADJECTIVE] = wordnet.lemmas("a", set(wordnet.ADJ_LEXFILES.values()) - excluded)
        return pools

    def _neglabel_pools(self) -> dict[str, list[str]]:
        excluded = {*self.exclude_lexfiles, *NEGLABEL_EXCLUDED_LEXFILES}
        if self.word_lists:
            files = read_word_lists(Path(self.word_lists).expanduser())
        else:
            files = {**wordnet.synset_heads("n"), **wordnet.synset_heads("a")}
        seen: dict[str, None] = {}  # one de-duplication across nouns and adjectives
        pools: dict[str, list[str]] = {NOUN: []}
        if self.use_adjectives:
            pools[ADJECTIVE] = []
        for name, words in files.items():
            pool = NOUN if name.startswith("noun.") else ADJECTIVE
            if name in excluded or pool not in pools:
                continue
            for word in words:
                if word not in seen:
                    seen[word] = None
                    pools[pool].append(word)
        return pools

    def fingerprint(self) -> str:
        """What the pools are read from: the word lists' content when a folder is given."""
        if not self.word_lists:
            return "wordnet-3.0"
        return content_key(self.full_pools())

    def pools(self, env: MethodEnv) -> dict[str, list[str]]:
        rng = env.rng("wordnet-subsample")
        out = {}
        for name, words in self.full_pools().items():
            if self.drop_id_names:
                words = without_id_names(words, env.suite.classes)
            out[name] = _subsample(words, self.max_per_pool, rng)
        return out

    def embed(self, env: MethodEnv, pool: str, words: list[str], template: str) -> torch.Tensor:
        """Embeddings of ``words`` (a subset of ``pool``), cached once per backbone for all
        suites: the full pool (~60k nouns) is embedded and the rows are picked, so a second
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
    pool: Pool = "all-lemmas"

    def generate(self, env: MethodEnv) -> LabelBank:
        pools = WordNetCandidates(self.use_adjectives, self.exclude_lexfiles,
                                  self.max_per_pool, self.pool).pools(env)
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
    nouns and adjectives. The default pool is NegLabel's ("neglabel": one head word per synset
    of 24 noun and 3 adjective lexicographer files); like the official code it keeps ID names
    among the candidates (``drop_id_names`` removes them). Counts are in the plugin README.
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
    pool: Pool = "neglabel"
    word_lists: str = ""
    drop_id_names: bool = False

    def candidates(self) -> WordNetCandidates:
        return WordNetCandidates(self.use_adjectives, self.exclude_lexfiles, self.max_per_pool,
                                 self.pool, self.word_lists, self.drop_id_names)

    def generate(self, env: MethodEnv) -> LabelBank:
        key = env.key("labels", self.name, self.params(), self.candidates().fingerprint())
        return cached_bank(env.cache, key, lambda: self._mine(env), env.log,
                           reuse=env.reuse("labels"))

    def _mine(self, env: MethodEnv) -> LabelBank:
        source = self.candidates()
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
        source_name = self.word_lists or f"WordNet 3.0 ({self.pool} pool)"
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source=source_name, templates=[self.noun_template], groups=groups,
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

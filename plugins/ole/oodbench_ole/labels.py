"""``ole-outliers``: OLE's auxiliary outlier class labels, embedded with a prompt ensemble.

The official code ships a list of 10,848 single-word English nouns (``nonus.npy``) without
saying where it comes from. ``source=official`` (the paper setting on real data) reads it from
a local copy or downloads it from the official repository at a pinned commit, checked against
its sha256; we do not redistribute it. The offline stand-in (``source=wordnet``) is built from
WordNet 3.0, deterministically: the single-word, lowercase lemmas (letters and inner hyphens
only) of the concrete-noun lexicographer files, in WordNet order, subsampled (seeded) to the
official list's size. Either way the ID class names are then removed (case-insensitive; the
official code filters nothing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from oodbench.download import FetchError, http_fetch
from oodbench.errors import MissingDataError, OfflineError, OODBenchError
from oodbench.hub import host_reachable
from oodbench.interfaces import LabelGenerator
from oodbench.labels import wordnet
from oodbench.labels.bank import cached_bank
from oodbench.labels.generators import without_id_names
from oodbench.paths import data_dir
from oodbench.types import LabelBank
from oodbench_ole.templates import resolve_templates

if TYPE_CHECKING:
    from oodbench.env import MethodEnv

OFFICIAL_LIST_SIZE = 10_848
# the official list: github.com/Choubo/OLE at commit f9077e47, src/outlier_label/nonus.npy
OFFICIAL_LIST_URL = ("https://raw.githubusercontent.com/Choubo/OLE/"
                     "f9077e47d490012b1f1a9294dc8549f68ce7eed9/src/outlier_label/nonus.npy")
OFFICIAL_LIST_SHA256 = "2cecb8e2c1fb97737b0e6267d4d8fb2f3191ee05f5f0d127bd71d55176d9725c"
# WordNet lexicographer files of things one can see (not acts, states, cognition, time...)
CONCRETE_LEXFILES = ["noun.animal", "noun.artifact", "noun.body", "noun.food", "noun.object",
                     "noun.plant", "noun.substance"]
SINGLE_WORD = re.compile(r"^[a-z]+(?:-[a-z]+)*$")


def single_words(words: list[str]) -> list[str]:
    """Lowercase single words (inner hyphens allowed), first occurrence order kept."""
    return list(dict.fromkeys(w for w in words if SINGLE_WORD.match(w)))


def subsample(words: list[str], limit: int, seed: int) -> list[str]:
    """``limit`` words drawn with a seeded generator, kept in their original order."""
    if limit <= 0 or limit >= len(words):
        return list(words)
    keep = np.sort(np.random.default_rng(seed).choice(len(words), size=limit, replace=False))
    return [words[i] for i in keep]


def official_list_path(path: str = "") -> Path:
    """Where the official list is read from: ``path``, or ``<data>/ole/nonus.npy``."""
    return Path(path).expanduser() if path else data_dir() / "ole" / "nonus.npy"


def read_official_list(path: str = "") -> list[str]:
    """The official 10,848 nouns; downloaded (pinned, sha256-checked) when no copy is here."""
    file = official_list_path(path)
    if not file.exists():
        if path:
            raise MissingDataError(f"OLE's official list {path!r} does not exist; pass the "
                                   f"path of nonus.npy as path=FILE.")
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            http_fetch(OFFICIAL_LIST_URL, file, OFFICIAL_LIST_SHA256)
        except FetchError as exc:
            raise OfflineError(f"Cannot download OLE's official outlier list ({exc}) from "
                               f"{OFFICIAL_LIST_URL}: put nonus.npy at {file} (or pass "
                               f"path=FILE), or use source=wordnet (the offline stand-in)."
                               ) from None
    try:
        words = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MissingDataError(f"{file} is not a readable .npy word list ({exc}); download "
                               f"nonus.npy again.") from None
    return [str(w) for w in words.reshape(-1)]


def read_word_file(path: str) -> list[str]:
    """One label per line (blank lines and '#' comments skipped), or a label bank JSON."""
    file = Path(path).expanduser()
    if not path or not file.is_file():
        raise MissingDataError(f"Outlier label file {path!r} does not exist; pass "
                               f"-p ole-outliers.path=FILE with source=file.")
    if file.suffix == ".json":
        return LabelBank.load(file).labels
    lines = (line.strip() for line in file.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@dataclasses.dataclass
class OLEOutliers(LabelGenerator):
    """WordNet concrete nouns (or your list) as OLE's outlier labels, with OLE's prompt kinds."""

    name = "ole-outliers"
    description = ("OLE outlier labels: ~10.8k single-word WordNet concrete nouns minus ID "
                   "names, embedded with 64 CLIP-style + 64 'with' prompts.")
    # official: OLE's released list (the paper setting, filled in on real data); wordnet: the
    # offline stand-in; file / list: your labels
    source: Literal["official", "wordnet", "file", "list"] = "wordnet"
    path: str = ""  # source=file: one label per line or a bank JSON; official: nonus.npy
    words: list[str] = dataclasses.field(default_factory=list)  # source=list
    lexfiles: list[str] = dataclasses.field(default_factory=lambda: list(CONCRETE_LEXFILES))
    # size of the fixed list before the ID-name filter; 0 = every candidate
    max_labels: int = OFFICIAL_LIST_SIZE
    seed: int = 42
    # a template set name (auto, ole128, clip64, with64, suite) or '|'-separated templates;
    # auto = ole128, or the suite's prompts on the CPU-sized mini backbone
    templates: str = "auto"

    paper_settings: ClassVar[dict[str, Any]] = {"source": "official"}

    def preflight(self, env: MethodEnv) -> None:
        """The official list must be here or downloadable before any work starts."""
        file = official_list_path(self.path)
        if self.source != "official" or file.exists() or (
                not self.path and host_reachable(OFFICIAL_LIST_URL)):
            return
        raise OfflineError(f"ole-outliers needs OLE's official outlier list: {file} does not "
                           f"exist and {OFFICIAL_LIST_URL} cannot be reached. Download "
                           f"nonus.npy there (or pass -p label_generator.path=FILE), or run "
                           f"the offline stand-in explicitly with "
                           f"-p label_generator.source=wordnet.")

    def __post_init__(self) -> None:
        resolve_templates(self.templates, ["{}"])  # fail on a typo before any work
        unknown = sorted(set(self.lexfiles) - set(wordnet.NOUN_LEXFILES.values()))
        if unknown:
            raise ValueError(f"unknown WordNet noun lexicographer file(s) {unknown}")

    def generate(self, env: MethodEnv) -> LabelBank:
        if self.source == "official":
            read_official_list(self.path)  # downloaded first: its content enters the key
        templates = resolve_templates(self.templates, env.suite.prompts, env.backbone_name)
        # "/2": banks built since the fixed list is embedded first (an older cached bank would
        # skip that and make the run encode its filtered list from scratch)
        key = env.key("labels", f"{self.name}/2", self.params(), templates,
                      self._source_fingerprint())
        return cached_bank(env.cache, key, lambda: self._build(env), env.log,
                           reuse=env.reuse("labels"))

    def _source_fingerprint(self) -> str:
        """A file's content is part of the key: editing the list gives a new bank."""
        file = official_list_path(self.path) if self.source == "official" \
            else Path(self.path).expanduser()
        if self.source not in ("file", "official") or not file.is_file():
            return ""
        return hashlib.sha256(file.read_bytes()).hexdigest()

    def _build(self, env: MethodEnv) -> LabelBank:
        if self.source == "wordnet":
            candidates = single_words(wordnet.lemmas("n", set(self.lexfiles)))
            origin = f"WordNet 3.0 ({', '.join(self.lexfiles)})"
        elif self.source == "official":
            candidates = read_official_list(self.path)
            origin = f"OLE official list ({official_list_path(self.path)})"
        elif self.source == "file":
            candidates, origin = read_word_file(self.path), self.path
        else:
            candidates, origin = list(self.words), "list"
        # the fixed list first (like the official file), then the ID filter: every suite
        # gets the same words minus its own class names
        candidates = subsample(list(dict.fromkeys(candidates)), self.max_labels, self.seed)
        labels = without_id_names(candidates, env.suite.classes)
        if not labels:
            raise OODBenchError(f"{self.name}: no outlier labels left from {origin} after "
                                f"removing the ID class names.")
        removed = len(candidates) - len(labels)
        env.log(f"{self.name}: {len(labels)} outlier labels ({len(candidates)} candidates, "
                f"{removed} removed as ID names)")
        templates = resolve_templates(self.templates, env.suite.prompts, env.backbone_name)
        if removed:
            self._embed_fixed_list(env, candidates, templates)
        return LabelBank(labels=labels, generator=self.name, params=self.params(), source=origin,
                         templates=templates,
                         meta={"candidates": len(candidates), "removed_id_names": removed})

    def _embed_fixed_list(self, env: MethodEnv, candidates: list[str],
                          templates: list[str]) -> None:
        """Embed the suite-independent list (before the ID filter), once per backbone.

        10,848 labels x 128 prompts is ~1.4 M text encodings (hours on a CPU). The text cache
        is keyed by the exact list, so embedding each suite's filtered list would pay that
        again per suite; the whole fixed list is the same for every suite, so it is embedded
        (or loaded) here and the feature store serves the filtered list's rows from it.
        """
        env.log(f"{self.name}: embedding the fixed list of {len(candidates)} labels "
                f"x {len(templates)} prompts (shared by every suite)")
        env.store.label_embeddings(env.backbone, candidates, templates, env.ctx)

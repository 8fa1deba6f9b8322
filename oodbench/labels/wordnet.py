"""WordNet 3.0 read straight from its database files (Debian ``wordnet-base``), no NLTK.

``oodbench data fetch-wordnet`` downloads the Debian package with ``apt-get download`` and
unpacks it under ``<data>/wordnet``; a system install (``/usr/share/wordnet``) works too.
The database format is documented in wndb(5WN): one synset per line,
``offset lex_filenum ss_type w_cnt word lex_id ... p_cnt pointers... | gloss``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from oodbench.errors import MissingDataError
from oodbench.paths import data_dir

# lexicographer file numbers (lexnames(5WN)); Debian omits the `lexnames` file NLTK needs
NOUN_LEXFILES = {
    3: "noun.Tops", 4: "noun.act", 5: "noun.animal", 6: "noun.artifact", 7: "noun.attribute",
    8: "noun.body", 9: "noun.cognition", 10: "noun.communication", 11: "noun.event",
    12: "noun.feeling", 13: "noun.food", 14: "noun.group", 15: "noun.location",
    16: "noun.motive", 17: "noun.object", 18: "noun.person", 19: "noun.phenomenon",
    20: "noun.plant", 21: "noun.possession", 22: "noun.process", 23: "noun.quantity",
    24: "noun.relation", 25: "noun.shape", 26: "noun.state", 27: "noun.substance",
    28: "noun.time",
}
ADJ_LEXFILES = {0: "adj.all", 1: "adj.pert", 44: "adj.ppl"}
SYSTEM_DIR = Path("/usr/share/wordnet")
_MARKER = re.compile(r"\((a|p|ip)\)$")  # adjective syntactic markers, e.g. "galore(ip)"


@dataclass(frozen=True)
class Synset:
    offset: int
    pos: str  # "n" or "a" (satellites "s" are folded into "a")
    lexfile: str
    words: tuple[str, ...]
    hypernyms: tuple[int, ...]  # noun synset offsets ("@" and "@i" pointers)
    gloss: str


# (package, version, local file name, sha256, Debian source package = its pool folder)
WORDNET_PACKAGE = ("wordnet-base", "1:3.0-37", "wordnet-base_1%3a3.0-37_all.deb",
                   "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752", "wordnet")


def fetch_wordnet(force: bool = False, progress=None) -> Path:
    """Download Debian's wordnet-base (6.5 MB) and unpack it under ``<data>/wordnet``.

    Straight from the Debian mirror (``OODBENCH_DEBIAN_MIRROR``) over HTTP(S), unpacked in
    pure Python (see :mod:`oodbench.download`); ``apt-get download`` only as a fallback.
    ``progress(done, total)``, if given, is called with the bytes downloaded.
    """
    import shutil
    import tempfile

    from oodbench.download import Package, download, unpack

    target = data_dir() / "wordnet"
    if not force and (target / "usr" / "share" / "wordnet" / "data.noun").exists():
        return target
    pkg = Package(WORDNET_PACKAGE[0], "apt", *WORDNET_PACKAGE[1:])
    downloads = data_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = download(pkg, downloads, progress)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=data_dir()))
    try:
        unpack(pkg, archive, tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_synsets.cache_clear()
    return target


def wordnet_dir() -> Path:
    for candidate in (data_dir() / "wordnet" / "usr" / "share" / "wordnet", SYSTEM_DIR):
        if (candidate / "data.noun").exists():
            return candidate
    raise MissingDataError(
        "WordNet 3.0 is not installed: run `oodbench data fetch-wordnet` "
        "(or `apt-get install wordnet-base`)."
    )


def _parse(line: str, pos: str, lexfiles: dict[int, str]) -> Synset | None:
    if line.startswith("  "):  # licence header
        return None
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    lexnum = int(fields[1])
    if lexnum not in lexfiles:
        return None
    count = int(fields[3], 16)
    words = tuple(_MARKER.sub("", fields[4 + 2 * i]).replace("_", " ") for i in range(count))
    at = 4 + 2 * count
    pointers = int(fields[at])
    hypernyms = []
    for i in range(pointers):
        symbol, target, target_pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
        if symbol in ("@", "@i") and target_pos == "n":
            hypernyms.append(int(target))
    return Synset(int(fields[0]), pos, lexfiles[lexnum], words, tuple(hypernyms), gloss.strip())


@functools.lru_cache(maxsize=2)
def load_synsets(root: Path | None = None) -> dict[str, dict[int, Synset]]:
    """{"n": offset -> Synset, "a": offset -> Synset} from data.noun and data.adj."""
    root = root or wordnet_dir()
    out: dict[str, dict[int, Synset]] = {}
    for pos, filename, lexfiles in (("n", "data.noun", NOUN_LEXFILES),
                                    ("a", "data.adj", ADJ_LEXFILES)):
        table: dict[int, Synset] = {}
        with open(root / filename, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                synset = _parse(line, pos, lexfiles)
                if synset is not None:
                    table[synset.offset] = synset
        out[pos] = table
    return out


def lemmas(pos: str, lexfiles: set[str] | None = None, root: Path | None = None) -> list[str]:
    """Distinct lemmas of a part of speech in file order (lexfile number, then synset offset).

    This is NegLabel's corpus order: its candidates are the lexicographer files read in
    turn, deduplicated as they come.
    """
    table = load_synsets(root)[pos]
    order = NOUN_LEXFILES if pos == "n" else ADJ_LEXFILES
    rank = {order[number]: i for i, number in enumerate(sorted(order))}
    seen: dict[str, None] = {}
    for synset in sorted(table.values(), key=lambda s: (rank[s.lexfile], s.offset)):
        if lexfiles is not None and synset.lexfile not in lexfiles:
            continue
        for word in synset.words:
            seen.setdefault(word, None)
    return list(seen)


def synset_heads(pos: str, lexfiles: set[str] | None = None,
                 root: Path | None = None) -> dict[str, list[str]]:
    """Per lexicographer file (in file-number order), the head word of each synset: its first
    lemma, lower-cased, in offset order, each word once per file.

    This is the form of NegLabel's released word lists (``txtfiles/noun.act.txt`` ...): one
    entry per synset, not every lemma.
    """
    table = load_synsets(root)[pos]
    order = NOUN_LEXFILES if pos == "n" else ADJ_LEXFILES
    out: dict[str, dict[str, None]] = {order[n]: {} for n in sorted(order)}
    for synset in sorted(table.values(), key=lambda s: s.offset):
        if lexfiles is None or synset.lexfile in lexfiles:
            out[synset.lexfile].setdefault(synset.words[0].lower(), None)
    return {name: list(words) for name, words in out.items()
            if lexfiles is None or name in lexfiles}


def hypernym_paths(offset: int, root: Path | None = None) -> Iterator[list[int]]:
    """Every path from a noun synset up to a root, nearest first."""
    nouns = load_synsets(root)["n"]
    stack: list[list[int]] = [[offset]]
    while stack:
        path = stack.pop()
        parents = nouns[path[-1]].hypernyms if path[-1] in nouns else ()
        if not parents:
            yield path
        for parent in parents:
            if parent not in path:
                stack.append([*path, parent])


def noun_synsets_of(word: str, root: Path | None = None) -> list[Synset]:
    key = word.lower()
    return [s for s in load_synsets(root)["n"].values()
            if key in (w.lower() for w in s.words)]


@functools.lru_cache(maxsize=2)
def noun_index(root: Path | None = None) -> dict[str, tuple[int, list[int]]]:
    """lemma -> (tagged sense count, synset offsets in sense-frequency order), from index.noun."""
    root = root or wordnet_dir()
    out: dict[str, tuple[int, list[int]]] = {}
    with open(root / "index.noun", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  "):
                continue
            fields = line.split()
            synset_count, pointer_count = int(fields[2]), int(fields[3])
            tagged = int(fields[5 + pointer_count])
            offsets = [int(x) for x in fields[6 + pointer_count : 6 + pointer_count + synset_count]]
            out[fields[0].replace("_", " ")] = (tagged, offsets)
    return out


def first_noun_sense(word: str, root: Path | None = None) -> Synset | None:
    """The most frequent noun sense of ``word`` (or of its last word, e.g. "fire engine")."""
    index, nouns = noun_index(root), load_synsets(root)["n"]
    for key in (word.lower().strip(), word.lower().split()[-1] if word.split() else ""):
        if key in index:
            for offset in index[key][1]:
                if offset in nouns:
                    return nouns[offset]
    return None


@functools.lru_cache(maxsize=2)
def hyponyms(root: Path | None = None) -> dict[int, list[int]]:
    """Inverse of the hypernym relation: noun offset -> its direct hyponyms."""
    children: dict[int, list[int]] = {}
    for synset in load_synsets(root)["n"].values():
        for parent in synset.hypernyms:
            children.setdefault(parent, []).append(synset.offset)
    return children


def ancestors(offset: int, root: Path | None = None) -> dict[int, int]:
    """Every hypernym ancestor -> its depth from the top of the hierarchy (root = 0)."""
    out: dict[int, int] = {}
    for path in hypernym_paths(offset, root):
        for depth, node in enumerate(reversed(path)):
            out[node] = min(depth, out.get(node, depth))
    return out

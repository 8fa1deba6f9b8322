"""Build the offline catalogue: packaged, labelled images -> normalised PNGs + catalog.jsonl.

The raw packages (unpacked by :mod:`oodbench_mini.fetch`) are openclipart, Tux Paint stamps,
Noto emoji, Twemoji and Fashion-MNIST. Each image gets a *concept* (a short noun phrase, the
class name used in prompts), a coarse *category* and a caption derived from folder names, file
names, Tux Paint descriptions and ``emoji.json`` (rules: :mod:`oodbench_mini.corpus_rules`).
The ``test`` split is held out from pretraining and reserved for the suites' evaluation;
everything here is deterministic (sorted, hash-based).

The catalogue has two parts. The *base* items are split by a hash into train and test; the
mini towers, mini-diffusion and mini-clipn were trained on its train split, which
:data:`TRAIN_SPLIT_SHA256` pins. The *test-only* items, appended after them, are images no
model here has seen, added to make the suites' test sets larger: openclipart images the caps
left out, the Twemoji rendering of every test-split emoji, and more Fashion-MNIST test images.
They never change the base items (exact duplicates keep the first, base, copy).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from oodbench_mini.corpus_rules import (
    EMOJI_CATEGORY,
    EMOJI_SUBCATEGORY,
    FMNIST_CLASSES,
    NOISE_WORDS,
    OPENCLIPART_RULES,
    RAW_ROOTS,
    TUXPAINT_RULES,
    VEHICLE_WORDS,
)

CORPUS_VERSION = 2
# sha256 of the train split's sorted (path, concept, category, caption) rows: what the mini
# models were trained on. A catalogue change must keep it (tests/test_mini.py checks it).
TRAIN_SPLIT_SHA256 = "8bc67f16f8642baa5cb1f10a25433442a52833bb0fdc48b0296980be9016dcb2"
IMAGE_SIZE = 64
MAX_PIXELS = 30_000_000  # openclipart ships one enormous PNG; it is skipped by pixel count
TEST_PERCENT = 30  # hash-based share of each clip-art/emoji/stamp category held out for suites
FMNIST_TRAIN_PER_CLASS = 1000
FMNIST_TEST_PER_CLASS = 200  # base test images per class
FMNIST_EXTRA_TEST_PER_CLASS = 300  # test-only: the next 300 of each class in t10k
FOLDER_CAP = 150  # per leaf folder, so stars / icons / playing cards do not swamp the corpus
CATEGORY_CAP = 250  # per openclipart category (computer icons, flags)
EXTRA_TEST_CAP = 150  # test-only openclipart images per category, from those the caps left out
# Smaller categories that suites evaluate on hold out more, so each ID class / OOD set has
# enough test images (about 30 per ID class, 50 per OOD set).
TEST_PERCENT_BY_CATEGORY = {
    "mammal": 35,
    "bird": 45,
    "fruit": 45,
    "vehicle": 40,
    "building": 35,
    "insect": 50,
    "fish": 50,
    "sea animal": 50,
    "reptile": 50,
    "amphibian": 50,
    "dinosaur": 50,
}
@dataclass
class Item:
    """One image before normalisation: where it comes from and what it shows."""

    key: str  # stable id inside its source, used for the output file name and the split hash
    source: str
    concept: str
    category: str
    caption: str
    raw: str = ""  # path of the raw file ("" for Fashion-MNIST, whose pixels come in `pixels`)
    split: str = ""
    pixels: bytes = b""


def _deepest(rules: dict, rel_dir: str) -> tuple[bool, object]:
    """Value of the longest rule prefix matching ``rel_dir`` (found flag, value)."""
    parts = rel_dir.split("/") if rel_dir else []
    for n in range(len(parts), 0, -1):
        prefix = "/".join(parts[:n])
        if prefix in rules:
            return True, rules[prefix]
    return False, None


def _words(stem: str) -> list[str]:
    stem = re.sub(r"([a-z])([A-Z])", r"\1 \2", stem)
    return [w for w in re.split(r"[^A-Za-z]+", stem.lower()) if w]


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _is_test(key: str, category: str) -> bool:
    share = TEST_PERCENT_BY_CATEGORY.get(category, TEST_PERCENT)
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 100 < share


def _hash_order(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: hashlib.sha1(i.key.encode()).hexdigest())


def _capped(items: list[Item], folder_cap: int, category_cap: int) -> list[Item]:
    """At most ``folder_cap`` per leaf folder and ``category_cap`` per category, chosen by a
    stable hash (not by name order, which would keep only "a..." files)."""
    by_dir: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_dir[str(Path(it.key).parent)].append(it)
    by_cat: dict[str, list[Item]] = defaultdict(list)
    for d in sorted(by_dir):
        for it in _hash_order(by_dir[d])[:folder_cap]:
            by_cat[it.category].append(it)
    kept = [it for c in sorted(by_cat) for it in _hash_order(by_cat[c])[:category_cap]]
    return sorted(kept, key=lambda i: i.key)


def _openclipart_all(root: Path, vocab: set[str]) -> list[Item]:
    """Folder = category; the first English-looking word of the file name refines the concept."""
    items = []
    for path in sorted(root.rglob("*.png")):
        if path.is_symlink():  # the package links many duplicates
            continue
        rel = path.relative_to(root).as_posix()
        found, rule = _deepest(OPENCLIPART_RULES, str(Path(rel).parent))
        if not found or rule is None:
            continue
        category, folder_concept = rule
        words = [w for w in _words(path.stem) if w not in NOISE_WORDS and len(w) >= 3]
        # only whole words of the text model's vocabulary: drops author names and Italian
        name = words[0] if words and words[0] in vocab else ""
        if category == "transport" and name in VEHICLE_WORDS:
            category, folder_concept = "vehicle", "vehicle"
        if category == "flag" and name and name != "flag":
            name = f"flag of {name}"
        concept = name or folder_concept
        caption = f"a clip art of {_article(concept)}"
        if name and name != folder_concept:
            caption += f", {_article(folder_concept)}"
        items.append(Item(rel, "openclipart", concept, category, caption + ".", raw=str(path)))
    return items


def openclipart_items(root: Path, vocab: set[str]) -> tuple[list[Item], list[Item]]:
    """The capped base items, and up to :data:`EXTRA_TEST_CAP` per category of those the caps
    left out (hash-chosen), as test-only items."""
    every = _openclipart_all(root, vocab)
    base = _capped(every, FOLDER_CAP, CATEGORY_CAP)
    kept = {it.key for it in base}
    left_out: dict[str, list[Item]] = defaultdict(list)
    for it in every:
        if it.key not in kept:
            left_out[it.category].append(it)
    extra = [it for c in sorted(left_out) for it in _hash_order(left_out[c])[:EXTRA_TEST_CAP]]
    for it in extra:
        it.split = "test"
    return base, sorted(extra, key=lambda i: i.key)


def tuxpaint_items(root: Path) -> list[Item]:
    """Folder = category; file name = concept; the .txt next to the stamp = caption."""
    items = []
    for path in sorted(root.rglob("*.png")):
        if path.is_symlink() or path.stem.endswith(("_back", "_mirror", "_flip")):
            continue
        rel = path.relative_to(root).as_posix()
        found, category = _deepest(TUXPAINT_RULES, str(Path(rel).parent))
        if not found or category is None:
            continue
        words = [w for w in _words(path.stem) if w not in NOISE_WORDS]
        desc = path.with_suffix(".txt")
        caption = ""
        if desc.exists():
            lines = desc.read_text(encoding="utf-8", errors="replace").splitlines()
            caption = lines[0].strip() if lines else ""
        letter = re.match(r"The (letter|number) (\S+?)\.?$", caption)
        if category == "letter":
            concept = f"{letter[1]} {letter[2].lower()}" if letter else "sign language hand"
        elif re.fullmatch(r"\d", path.stem):
            concept = f"number {path.stem}"
        else:
            concept = " ".join(words) or category
        if not caption or len(caption) > 120:
            caption = f"a picture of {_article(concept)}."
        items.append(Item(rel, "tuxpaint", concept, category, caption, raw=str(path)))
    return items


def emoji_items(root: Path, vendor: str = "google", source: str = "emoji") -> list[Item]:
    """``emoji.json`` gives name (concept), category and subcategory for every 64 px PNG of an
    emoji-datasource package (``vendor``: google = Noto, twitter = Twemoji)."""
    entries = json.loads((root / "emoji.json").read_text(encoding="utf-8"))
    items = []
    for e in sorted(entries, key=lambda e: e["image"]):
        img = root / "img" / vendor / "64" / e["image"]
        if not e.get(f"has_img_{vendor}") or not img.exists():
            continue
        sub = e.get("subcategory", "")
        category = EMOJI_SUBCATEGORY.get(sub, EMOJI_CATEGORY.get(e["category"]))
        if category is None:  # skin-tone swatches
            continue
        concept = (e.get("name") or e.get("short_name", "")).lower().strip()
        concept = re.sub(r"\s+", " ", concept.replace("_", " "))
        if not concept:
            continue
        caption = f"an emoji of {_article(concept)}."
        items.append(Item(e["image"], source, concept, category, caption, raw=str(img)))
    return items


def twemoji_test_items(root: Path) -> list[Item]:
    """Test-only: the Twemoji rendering of each emoji whose Noto rendering is in the test split
    (same hash), so no test emoji has a rendering in train."""
    items = emoji_items(root, "twitter", "twemoji")
    for it in items:
        it.split = "test"
    return [it for it in items if _is_test(f"emoji/{it.key}", it.category)]


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fmnist_items(root: Path) -> tuple[list[Item], list[Item]]:
    """The base items, the first N images per class of the train / t10k files (the official
    split), and the test-only items, the t10k images of each class that follow them."""
    base: list[Item] = []
    extra: list[Item] = []
    test_stop = FMNIST_TEST_PER_CLASS + FMNIST_EXTRA_TEST_PER_CLASS
    # (split, file prefix, [(first, stop, list)] per class): each file is read once
    parts = (("train", "train", [(0, FMNIST_TRAIN_PER_CLASS, base)]),
             ("test", "t10k", [(0, FMNIST_TEST_PER_CLASS, base),
                               (FMNIST_TEST_PER_CLASS, test_stop, extra)]))
    for split, prefix, spans in parts:
        images = _idx(root / f"{prefix}-images-idx3-ubyte.gz")
        labels = _idx(root / f"{prefix}-labels-idx1-ubyte.gz")
        for c, (concept, category) in enumerate(FMNIST_CLASSES):
            indices = np.flatnonzero(labels == c)
            for first, stop, items in spans:
                items += [Item(f"{prefix}_{int(i):05d}", "fmnist", concept, category,
                               f"a greyscale photo of {_article(concept)}.", split=split,
                               pixels=images[i].tobytes())
                          for i in indices[first:stop]]
    return base, extra


def normalise(img: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Any image -> RGB ``size``x``size``: alpha on white, cropped to content, fit and centred."""
    if img.mode in ("P", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        bbox = img.getchannel("A").getbbox()
        if bbox:
            img = img.crop(bbox)
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    img = img.convert("RGB")
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas


def _convert(job: tuple[str, bytes, str]) -> str | None:
    """Worker: write one normalised PNG; returns the content hash, or None if unusable."""
    raw, pixels, out = job
    try:
        if pixels:
            img = Image.fromarray(np.frombuffer(pixels, np.uint8).reshape(28, 28)).convert("RGB")
            img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            digest = hashlib.sha1(pixels).hexdigest()
        else:
            data = Path(raw).read_bytes()
            digest = hashlib.sha1(data).hexdigest()
            Image.MAX_IMAGE_PIXELS = None  # the size check below is ours, before decoding
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                return None
            img = normalise(img)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        img.save(out, optimize=False)
        return digest
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        # truncated or odd files: skip, never abort
        return None


def _vocab() -> set[str]:
    """Whole-word entries of the MiniLM tokenizer, used to filter openclipart file names."""
    from oodbench_mini.model import text_model_dir

    vocab_file = text_model_dir() / "vocab.txt"
    if not vocab_file.exists():
        return set()
    words = vocab_file.read_text(encoding="utf-8").split("\n")
    return {w for w in words if w.isalpha() and w.isascii()}


def collect(raw_dir: Path) -> list[Item]:
    """All items of the packages, split assigned, sorted and stable: the base items, then the
    test-only items (see the module docstring)."""
    openclipart, openclipart_extra = openclipart_items(raw_dir / RAW_ROOTS["openclipart"],
                                                       _vocab())
    fmnist, fmnist_extra = fmnist_items(raw_dir / RAW_ROOTS["fmnist"])
    base = (
        openclipart
        + tuxpaint_items(raw_dir / RAW_ROOTS["tuxpaint"])
        + emoji_items(raw_dir / RAW_ROOTS["emoji"])
        + fmnist
    )
    for it in base:
        if not it.split:
            it.split = "test" if _is_test(f"{it.source}/{it.key}", it.category) else "train"
    return (base + openclipart_extra + twemoji_test_items(raw_dir / RAW_ROOTS["twemoji"])
            + fmnist_extra)


def train_split_digest(rows: Iterable[dict]) -> str:
    """sha256 of a catalogue's train rows (sorted path, concept, category, caption)."""
    train = sorted(json.dumps([r["path"], r["concept"], r["category"], r["caption"]])
                   for r in rows if r["split"] == "train")
    return hashlib.sha256("\n".join(train).encode()).hexdigest()


def _out_name(item: Item) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(Path(item.key).with_suffix("")))
    return f"images/{item.source}/{stem}.png"


def build_catalog(raw_dir: Path, out_dir: Path, workers: int = 2) -> Path:
    """Normalise every usable image into ``out_dir/images`` and write ``out_dir/catalog.jsonl``.

    Exact duplicates (same raw bytes) are kept once, so a test image never reappears in train.
    """
    items = collect(raw_dir)
    jobs = [(it.raw, it.pixels, str(out_dir / _out_name(it))) for it in items]
    with ProcessPoolExecutor(workers) as pool:
        digests = list(pool.map(_convert, jobs, chunksize=64))
    seen: set[str] = set()
    lines = []
    for it, digest in zip(items, digests, strict=True):
        if digest is None or digest in seen:
            if digest is None:
                continue
            (out_dir / _out_name(it)).unlink(missing_ok=True)
            continue
        seen.add(digest)
        row = asdict(it)
        lines.append(
            json.dumps(
                {
                    "path": _out_name(it),
                    "source": row["source"],
                    "concept": row["concept"],
                    "category": row["category"],
                    "caption": row["caption"],
                    "split": row["split"],
                },
                ensure_ascii=False,
            )
        )
    catalog = out_dir / "catalog.jsonl"
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return catalog


def read_catalog(path: Path) -> Iterator[dict]:
    """Rows of a ``catalog.jsonl``."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)

"""Dataset sources: where a suite's images come from, resolved to an :class:`ImageList`.

Source specs are small mappings in suite files:

* ``{type: imagefolder, root: PATH, class_dirs: [...]}``: images under ``root``; for an ID set
  the sub-folder of each class (``class_dirs`` aligned with the suite's classes, default the
  class names); for an OOD set every image below ``root`` (symlinked sub-folders are
  followed). ``${data}`` expands to the data dir. With ``imglist: FILE`` (and optionally
  ``imglist_root: DIR``, default ``root``) and that file present, the set is exactly the images
  the list names, one ``<path relative to imglist_root> <label>`` per line (OpenOOD v1.5's
  ``benchmark_imglist`` format; the label is the class index for an ID set): every listed image
  must exist and ``expected_count`` is not applied. Without the file, the folder as above.
* ``{type: offline, split: test, select: {concept|category: [...]}}``: the offline mini world.
* ``{type: hf, id: DATASET_ID, split: SPLIT, image: image, label: label, labels: [...]}``: a
  Hugging Face ``datasets`` dataset. ``oodbench data fetch SUITE`` downloads only the split's
  files into the HF hub cache and records them under ``<data>/hf/``; a run then reads those
  files with no network. Without that record: ``datasets.load_dataset`` (the hub, or its local
  cache with ``HF_HUB_OFFLINE=1``).
  ``labels`` are the dataset's label ids of the suite's classes, in the suite's class order. For
  an ID set the suite's class names are checked against the dataset's ``ClassLabel`` names when
  it loads (case, ``_`` / space and a ``001.`` prefix aside): a swapped or shifted list stops
  the run with one line instead of scoring images against the wrong prompts.

Each source may carry ``obtain: "how to get it"``, shown when the data is missing, and
``expected_count: N``, the published number of images of the set (after any class selection):
a different count stops the run with one line (a partial download must not give a number).

An image folder is keyed (``ImageList.fingerprint``, the feature cache key) by its listing and
the SHA-256 of every file's content, memoised per (path, size, mtime_ns, ctime_ns, inode) in
``<cache>/content-index`` (:class:`oodbench.cache.ContentIndex`): the first run reads each file
once, a re-run stats it. Offline and Hugging Face sets keep their own keys. The same digests let
a run refuse an OOD set that shares an image (same bytes, or the same ``hf://`` row) with the ID
set (:func:`refuse_shared_images`). A class folder (``class_dirs`` or the class names) that is
empty or absent, and an image name that is a broken symbolic link, stop with one line naming
it (an error, not a skip: a partial copy must not give a number).

An imagefolder source may name ``manifest: FILE`` (relative to the suite file): one
``<sha256>  <relative/path>`` line per image, sorted by path (``sha256sum`` format, paths
relative to ``root``). A run only compares the file *list* with it (hashing 50k images every
run is too slow); ``oodbench suites verify`` hashes the contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oodbench.cache import ContentIndex, atomic_write_text, content_key
from oodbench.errors import MissingDataError, OfflineError, OODBenchError
from oodbench.hub import prefer_offline_when_unreachable
from oodbench.paths import cache_dir, data_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
# keys that check or locate a copy without changing which images are read: never in the key
# (``_suite`` is set by the suite parser beside ``manifest``, for the verify command hint)
CHECK_KEYS = ("obtain", "expected_count", "manifest", "_suite")
IMGLIST_KEYS = ("imglist", "imglist_root")
Progress = Callable[[int, int], None]


class ClassNameMismatchError(OODBenchError):
    """A suite's class names disagree with the dataset's own names for the same label ids."""


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB of any PIL mode; 16-bit (and 32-bit integer) grey is scaled to 8 bits first, which
    ``convert("RGB")`` does not do: it clips, so a 16-bit PNG came out almost pure white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(pixels * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return image.convert("RGB")


class ImageList:
    """An ordered list of images with ID class labels (-1 for OOD) and a fingerprint.

    ``fingerprint`` names the images in cache keys. For an image folder (``content_keyed``) it
    is computed on first use from the listing (spec, relative paths, sizes, labels) and the
    SHA-256 of every file's bytes (:meth:`digests`): an image rewritten in place, even to the
    same size, changes it. Other lists (the offline world, Hugging Face sets, a plugin's own
    files) keep the fingerprint they were made with, so their cache keys stay as they were.
    """

    def __init__(self, name: str, keys: list[str], labels: np.ndarray, fingerprint: str,
                 hf_dataset: Any = None, hf_image_column: str = "image", *,
                 content_keyed: bool = False) -> None:
        self.name = name
        self.keys = keys  # file paths, or "hf://<id>/<split>/<row>" references
        self.labels = labels
        self.listing_fingerprint = fingerprint
        self.hf_dataset = hf_dataset
        self.hf_image_column = hf_image_column
        self.content_keyed = content_keyed
        self._fingerprint: str | None = None if content_keyed else fingerprint
        self._digests: list[str | None] | None = None
        self._index: ContentIndex | None = None

    def __repr__(self) -> str:
        return f"ImageList(name={self.name!r}, images={len(self.keys)})"

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = content_key("image-content/1", self.listing_fingerprint,
                                            self.digests())
        return self._fingerprint

    def use_index(self, index: ContentIndex) -> None:
        """Where :meth:`digests` memoises (default: the index under ``OODBENCH_CACHE``)."""
        if self._digests is None:
            self._index = index

    def digests(self) -> list[str | None]:
        """SHA-256 of each image file's bytes (None: an ``hf://`` row, or unreadable now),
        computed once per list; see :class:`oodbench.cache.ContentIndex` for the cost."""
        if self._digests is None:
            files = [i for i, k in enumerate(self.keys) if not k.startswith("hf://")]
            index = self._index or ContentIndex(cache_dir())
            found = index.digests([self.keys[i] for i in files]) if files else []
            digests: list[str | None] = [None] * len(self.keys)
            for i, digest in zip(files, found, strict=True):
                digests[i] = digest
            self._digests = digests
        return self._digests

    def open(self, index: int) -> Image.Image:
        """Open image ``index`` as RGB; raises on unreadable data (the loader records why)."""
        if self.hf_dataset is not None:
            image = self.hf_dataset[index][self.hf_image_column]
        else:
            with Image.open(self.keys[index]) as img:
                img.load()
                image = img
        return to_rgb(image)

    def subset(self, indices: Sequence[int], name: str | None = None) -> ImageList:
        idx = list(indices)
        keys = [self.keys[i] for i in idx]
        base = self.listing_fingerprint if self.content_keyed else self.fingerprint
        out = ImageList(name or self.name, keys, self.labels[idx], content_key(base, idx),
                        self.hf_dataset, self.hf_image_column, content_keyed=self.content_keyed)
        out._index = self._index
        if self._digests is not None:
            out._digests = [self._digests[i] for i in idx]
        return out


def shared_images(a: ImageList, b: ImageList) -> int:
    """How many images of ``b`` are also in ``a``: the same file content (SHA-256) or the same
    ``hf://`` row. Unreadable files match nothing."""
    seen = {d for d in a.digests() if d is not None} | {k for k in a.keys
                                                       if k.startswith("hf://")}
    return sum(1 for k, d in zip(b.keys, b.digests(), strict=True)
               if (d is not None and d in seen) or (d is None and k in seen))


def refuse_shared_images(id_name: str, id_images: ImageList,
                         ood_images: dict[str, ImageList]) -> None:
    """Stop before any scoring when an OOD set shares an image with the ID set."""
    for name, images in ood_images.items():
        shared = shared_images(id_images, images)
        if shared:
            raise OODBenchError(
                f"OOD set {name!r} shares {shared} of its {len(images)} images with the ID set "
                f"{id_name!r} (identical file contents): an image cannot be both in- and "
                f"out-of-distribution; fix the suite's sources or remove the shared files.")


# the variables a suite's paths may name: ${data} and OODBENCH_* (a shared suite file must not
# be able to print, say, ${OPENAI_API_KEY} into a path or an error message)
_VARIABLE = re.compile(r"\$\{(OODBENCH_[A-Z0-9_]+)\}|\$(OODBENCH_[A-Z0-9_]+)")


def expand(path: str) -> Path:
    text = path.replace("${data}", str(data_dir()))
    text = _VARIABLE.sub(lambda m: os.environ.get(m.group(1) or m.group(2), m.group(0)), text)
    return Path(text).expanduser()


def resolve_source(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    """Resolve a source spec; ``classes`` given = an ID set (labels = class indices)."""
    kind = spec.get("type")
    if kind == "imagefolder":
        return _imagefolder(spec, name, classes)
    if kind == "offline":
        return _offline(spec, name, classes)
    if kind == "hf":
        return _huggingface(spec, name, classes)
    raise OODBenchError(
        f"Dataset {name!r}: unknown source type {kind!r}; use imagefolder, offline or hf."
    )


def obtain_hint(spec: dict[str, Any]) -> str:
    """The source's ``obtain`` text with ``${data}`` written out as this machine's data dir."""
    suite = spec.get("_suite", "<suite>")
    how = spec.get("obtain") or f"see `oodbench suites show {suite}`"
    return str(how).replace("${data}", str(data_dir()))


def _missing(spec: dict[str, Any], name: str, what: str) -> MissingDataError:
    return MissingDataError(f"Dataset {name!r} is missing: {what}. To obtain it: "
                            f"{obtain_hint(spec)}")


def _walk_files(root: Path) -> Iterator[Path]:
    """Every file below ``root``, following symlinked folders (a class folder linked in from
    another disk is common) but never into a folder that is already on the current path (a
    link back up would loop forever). Paths keep the links' names, relative to ``root``."""
    def key(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:  # a broken link
            return None
        return st.st_dev, st.st_ino

    stack: list[tuple[Path, frozenset[tuple[int, int]]]] = []
    top = key(root)
    if top is not None:
        stack.append((root, frozenset({top})))
    while stack:
        folder, ancestors = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:  # unreadable folder: as rglob, skip it
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                continue
            if not is_dir:
                yield path
                continue
            ident = key(path)
            if ident is not None and ident not in ancestors:
                stack.append((path, ancestors | {ident}))


def _list_images(root: Path, name: str = "") -> list[Path]:
    """Image files below ``root`` (symlinked sub-folders included), sorted as paths.

    An image name that is a broken symbolic link stops with one line naming it: a missing
    image must not silently shrink a set (nor end in a traceback when it is hashed)."""
    files = sorted(p for p in _walk_files(root) if p.suffix.lower() in IMAGE_EXTENSIONS)
    for path in files:
        if path.is_symlink() and not path.exists():
            raise MissingDataError(
                f"Dataset {name!r}: {path} is a broken symbolic link (its target "
                f"{os.readlink(path)} does not exist); restore the target or remove the link.")
    return files


def _files_fingerprint(spec: dict[str, Any], files: Sequence[Path], root: Path,
                       labels: np.ndarray) -> str:
    # path + size per file: cheap on 50k images yet catches added, removed and replaced files
    entries = [(str(f.relative_to(root)), f.stat().st_size) for f in files]
    # an image list that is not here does not change which images are read
    unused = () if image_list(spec) else IMGLIST_KEYS
    described = {k: v for k, v in spec.items() if k not in CHECK_KEYS and k not in unused}
    return content_key(described, entries, labels.tolist())


def _check_count(spec: dict[str, Any], name: str, found: int, where: str) -> None:
    expected = spec.get("expected_count")
    if expected is not None and int(expected) != found:
        raise MissingDataError(
            f"Dataset {name!r} has {found} images {where}, expected {int(expected)} (an "
            f"incomplete download or extra files); fix the copy. To obtain it: "
            f"{obtain_hint(spec)}")


def image_list(spec: dict[str, Any]) -> tuple[Path, Path] | None:
    """(list file, image root) when the source names an ``imglist`` that exists here."""
    if not spec.get("imglist"):
        return None
    listing = expand(str(spec["imglist"]))
    if not listing.is_file():
        return None
    return listing, expand(str(spec.get("imglist_root") or spec.get("root", "")))


def read_image_list(listing: Path, base: Path, name: str, classes: Sequence[str] | None,
                    spec: dict[str, Any] | None = None) -> tuple[list[Path], list[int]]:
    """Files and labels of an OpenOOD-style list: ``<path relative to base> <label>`` a line.

    For an ID set the label is the suite's class index; for an OOD set it is ignored (-1).
    Every listed image must exist: a partial copy stops with one line.
    """
    files: list[Path] = []
    labels: list[int] = []
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        rel, _, extra = line.partition(" ")
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise OODBenchError(f"Dataset {name!r}: image list {listing} line {number} is not a "
                                f"relative path: {rel!r}.")
        label = -1
        if classes is not None:
            try:
                label = int(extra.split()[0])
            except (IndexError, ValueError):
                label = -2
            if not 0 <= label < len(classes):
                raise OODBenchError(
                    f"Dataset {name!r}: image list {listing} line {number} has label "
                    f"{extra.strip()[:20]!r}, not a class index 0-{len(classes) - 1} of the "
                    f"suite's classes.")
        files.append(base / rel)
        labels.append(label)
    absent = [f for f in files if not f.is_file()]
    if absent:
        how = obtain_hint(spec) if spec else "see `oodbench suites show <suite>`"
        raise MissingDataError(
            f"Dataset {name!r}: {len(absent)} of the {len(files)} images listed in {listing} "
            f"are missing under {base} (first: {absent[0].relative_to(base).as_posix()}); "
            f"complete the copy. To obtain it: {how}")
    return files, labels


def folder_files(spec: dict[str, Any], name: str,
                 classes: Sequence[str] | None) -> tuple[Path, list[Path], list[int]]:
    """Root, files and labels an imagefolder source selects (no files when root is absent).

    With an ``imglist`` present here, exactly the listed images (root = ``imglist_root``).
    """
    listed = image_list(spec)
    if listed is not None:
        return (listed[1], *read_image_list(listed[0], listed[1], name, classes, spec))
    root = expand(str(spec.get("root", "")))
    files: list[Path] = []
    labels: list[int] = []
    if not root.is_dir():
        return root, files, labels
    if classes is None:
        subdirs = spec.get("class_dirs")  # an OOD set made of some class folders (hard OOD)
        files = ([f for sub in subdirs for f in _class_images(root / str(sub), name)]
                 if isinstance(subdirs, list) else _list_images(root, name))
        labels = [-1] * len(files)
    else:
        class_dirs = spec.get("class_dirs") or list(classes)
        if class_dirs == "sorted":  # torchvision ImageFolder order (ImageNet: sorted wnids)
            class_dirs = sorted(p.name for p in root.iterdir() if p.is_dir())
        if len(class_dirs) != len(classes):
            raise OODBenchError(f"Dataset {name!r}: class_dirs has {len(class_dirs)} entries "
                                f"for {len(classes)} classes.")
        for index, sub in enumerate(class_dirs):
            found = _class_images(root / str(sub), name)
            files += found
            labels += [index] * len(found)
    return root, files, labels


def _class_images(folder: Path, name: str) -> list[Path]:
    """The images of one class folder; an empty or absent one stops with one line naming it
    (a class without images would silently leave the set, or be scored with no examples)."""
    found = _list_images(folder, name)
    if not found:
        what = "has no images" if folder.is_dir() else "does not exist"
        raise MissingDataError(f"Dataset {name!r}: class folder {folder} {what}; complete the "
                               f"copy or fix the source's class_dirs.")
    return found


def _imagefolder(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    root, files, labels = folder_files(spec, name, classes)
    if not root.is_dir():
        raise _missing(spec, name, f"folder {root} does not exist")
    if not files:
        raise _missing(spec, name, f"no images under {root}")
    if spec.get("manifest"):  # before the count: it says which files differ
        diff = compare_listing(read_manifest(spec, name), relative_paths(files, root))
        if not diff.ok:
            raise MissingDataError(
                f"Dataset {name!r} under {root} does not match its manifest: {diff.summary()}; "
                f"check the copy with `{verify_command(spec, name)}`.")
    if image_list(spec) is None:  # a list defines its set: every listed image was checked
        _check_count(spec, name, len(files), f"under {root}")
    label_array = np.asarray(labels, dtype=np.int64)
    return ImageList(name, [str(f) for f in files], label_array,
                     _files_fingerprint(spec, files, root, label_array), content_keyed=True)


# -- checksum manifests ------------------------------------------------------------------------
@dataclass
class ManifestDiff:
    """How a local copy differs from its manifest (paths relative to the source root)."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def summary(self, first: int = 3) -> str:
        parts = []
        for what, paths in (("missing", self.missing), ("extra", self.extra),
                            ("changed", self.changed)):
            if paths:
                more = ", ..." if len(paths) > first else ""
                parts.append(f"{len(paths)} {what} ({', '.join(paths[:first])}{more})")
        return "; ".join(parts) or "matches"


def verify_command(spec: dict[str, Any], name: str) -> str:
    return f"oodbench suites verify {shlex.quote(str(spec.get('_suite', '<suite>')))} " \
           f"--set {shlex.quote(name)}"


def relative_paths(files: Sequence[Path], root: Path) -> list[str]:
    return [f.relative_to(root).as_posix() for f in files]


def read_manifest(spec: dict[str, Any], name: str) -> dict[str, str]:
    """The source's manifest as {relative path: sha256}; one-line errors when unusable."""
    path = Path(str(spec["manifest"]))
    if not path.is_file():
        raise MissingDataError(
            f"Dataset {name!r}: manifest {path} does not exist; create it from a good copy "
            f"with `oodbench suites manifest` or remove `manifest:` from the suite.")
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        # sha256sum's "<hex>  <path>" (" *" in its binary mode)
        digest, sep, rel = line[:64].lower(), line[64:66], line[66:]
        if len(digest) != 64 or not set(digest) <= set("0123456789abcdef") or \
                sep not in ("  ", " *") or not rel:
            raise OODBenchError(f"Manifest {path} line {number} is not '<sha256>  <path>': "
                                f"{line[:80]!r}.")
        entries[rel] = digest
    return entries


def compare_listing(manifest: dict[str, str], paths: Sequence[str]) -> ManifestDiff:
    """File list check only (no hashing): what a run can afford on every start."""
    present = set(paths)
    return ManifestDiff(missing=sorted(set(manifest) - present),
                        extra=sorted(present - set(manifest)))


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:  # file_digest reads in C with the GIL released
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_files(files: Sequence[Path], progress: Progress | None = None,
               workers: int | None = None) -> list[str]:
    """SHA-256 of each file, in order; a thread pool overlaps disk reads with hashing."""
    workers = workers or min(32, 4 * (os.cpu_count() or 1))
    digests: list[str] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, digest in enumerate(pool.map(_sha256, files), 1):
            digests.append(digest)
            if progress is not None and (done % 64 == 0 or done == len(files)):
                progress(done, len(files))
    return digests


def write_manifest(files: Sequence[Path], root: Path, out: Path,
                   progress: Progress | None = None, workers: int | None = None) -> int:
    """Hash ``files`` and write their manifest to ``out`` atomically; returns the count."""
    rels = relative_paths(files, root)
    digests = hash_files(files, progress, workers)
    lines = sorted(zip(rels, digests, strict=True))
    atomic_write_text(out, "".join(f"{digest}  {rel}\n" for rel, digest in lines))
    return len(lines)


def verify_manifest(spec: dict[str, Any], name: str, classes: Sequence[str] | None,
                    progress: Progress | None = None,
                    workers: int | None = None) -> tuple[ManifestDiff, int]:
    """Compare a local copy with its manifest by content; returns the diff and files hashed."""
    manifest = read_manifest(spec, name)
    root, files, _ = folder_files(spec, name, classes)
    rels = relative_paths(files, root)
    diff = compare_listing(manifest, rels)
    common = [(rel, f) for rel, f in zip(rels, files, strict=True) if rel in manifest]
    digests = hash_files([f for _, f in common], progress, workers)
    diff.changed = sorted(rel for (rel, _), digest in zip(common, digests, strict=True)
                          if manifest[rel] != digest)
    return diff, len(common)


def _offline(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    from oodbench.data.offline import load_offline_source

    paths, keys = load_offline_source(spec)
    if not paths:
        raise _missing(spec, name, "the selection matched no image of the offline catalogue")
    if classes is None:
        labels = np.full(len(paths), -1, dtype=np.int64)
    else:
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({k for k in keys if k not in index})
        if unknown:
            raise OODBenchError(f"Dataset {name!r}: offline keys {unknown[:3]} are not ID classes.")
        labels = np.asarray([index[k] for k in keys], dtype=np.int64)
    root = Path(os.path.commonpath([str(p) for p in paths])) if len(paths) > 1 else paths[0].parent
    return ImageList(name, [str(p) for p in paths], labels,
                     _files_fingerprint(spec, paths, root, labels))


def normalise_class_name(text: str) -> str:
    """Compare form of a class name: lower case, ``_`` as space, no ``001.`` prefix (CUB)."""
    text = re.sub(r"^\d+\.(?=\S)", "", str(text).strip())
    return " ".join(text.replace("_", " ").lower().split())


def _dataset_class_names(ds: Any, label_col: str) -> list[str] | None:
    """The ``ClassLabel`` names of ``label_col``; None when the dataset carries no real names."""
    feature = (getattr(ds, "features", None) or {}).get(label_col)
    names = list(getattr(feature, "names", None) or [])
    if not names or names == [str(i) for i in range(len(names))]:  # ClassLabel(num_classes=N)
        return None
    return names


def check_class_names(ds: Any, label_col: str, wanted: Sequence[int] | None,
                      classes: Sequence[str], name: str, dataset_id: str) -> None:
    """Stop on the first label id whose dataset name is not the suite's name for that class."""
    names = _dataset_class_names(ds, label_col)
    if names is None:
        return
    fix = ("fix the suite's class list or its `labels:` ids so that each class is the "
           "dataset's name for its id")
    if wanted is None:
        if len(classes) != len(names):
            raise ClassNameMismatchError(
                f"Dataset {name!r}: the suite names {len(classes)} classes but Hugging Face "
                f"dataset {dataset_id!r} has {len(names)} ({label_col!r} ClassLabel); name all "
                f"of them in label order, or select some with `labels:` ids.")
        wanted = range(len(names))
    elif len(wanted) != len(classes):
        raise ClassNameMismatchError(
            f"Dataset {name!r}: `labels:` lists {len(wanted)} label ids of Hugging Face dataset "
            f"{dataset_id!r} but the suite names {len(classes)} classes; give one id per class, "
            f"in the class list's order.")
    for index, (label, ours) in enumerate(zip(wanted, classes, strict=True)):
        label = int(label)
        if not 0 <= label < len(names):
            raise ClassNameMismatchError(
                f"Dataset {name!r}: label id {label} (suite class {index}, {ours!r}) is not one "
                f"of the {len(names)} classes of Hugging Face dataset {dataset_id!r}; {fix}.")
        if normalise_class_name(names[label]) != normalise_class_name(ours):
            raise ClassNameMismatchError(
                f"Dataset {name!r}: class names do not match Hugging Face dataset "
                f"{dataset_id!r}: label id {label} is {names[label]!r} there but the suite "
                f"calls it {ours!r} (suite class {index}); {fix}.")


# -- Hugging Face sources ----------------------------------------------------------------------
# a data file of a hub dataset as `datasets` resolves it: hf://datasets/ID@REV/PATH or, for the
# hub's parquet export, https://huggingface.co/datasets/ID/resolve/REV/PATH
_HF_FILE = re.compile(r"^(?:hf://datasets/(?P<repo>[^@]+)@(?P<rev>[^/]+)/"
                      r"|https?://[^/]+/datasets/(?P<repo2>.+?)/resolve/(?P<rev2>[^/]+)/)"
                      r"(?P<path>.+)$")


def _fetch_hint(spec: dict[str, Any]) -> str:
    suite = spec.get("_suite") or "SUITE"
    hint = (f"fetch it with `oodbench data fetch {suite}` where the hub is reachable (offline: "
            f"copy the Hugging Face hub cache and {data_dir() / 'hf'} from such a machine)")
    how = spec.get("obtain")
    return hint if not how or "oodbench data fetch" in str(how) else \
        f"{hint}; or: {obtain_hint(spec)}"


def hf_record_path(dataset_id: str, config: str | None, split: str) -> Path:
    """Where ``oodbench data fetch`` records which hub files make up one split."""
    return (data_dir() / "hf" / dataset_id.replace("/", "--") / str(config or "default")
            / f"{split}.json")


def hf_fetched(dataset_id: str, config: str | None,
               split: str) -> tuple[dict[str, Any], list[Path]] | None:
    """The record of a fetched split and its files in the HF hub cache, or None when they are
    not all here. Looks at local files only: never a network call."""
    path = hf_record_path(dataset_id, config, split)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    from huggingface_hub import try_to_load_from_cache

    files: list[Path] = []
    for rel in record.get("files") or []:
        found = try_to_load_from_cache(record["repo"], rel, revision=record["revision"],
                                       repo_type="dataset")
        if not isinstance(found, str):
            return None
        files.append(Path(found))
    return (record, files) if files else None


@contextmanager
def hub_offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` for the HF libraries inside the block (caches only), then restored."""
    import importlib

    saved_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    saved: list[tuple[Any, Any]] = []
    for module_name in ("huggingface_hub.constants", "datasets.config"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        saved.append((module, module.HF_HUB_OFFLINE))
        module.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, value in saved:
            module.HF_HUB_OFFLINE = value
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def _load_fetched(record: dict[str, Any], files: Sequence[Path]) -> Any:
    """The fetched split's files as a ``datasets`` Dataset (local files: no network)."""
    import datasets

    features = datasets.Features.from_dict(record["features"]) if record.get("features") \
        else None
    with hub_offline():
        return datasets.load_dataset(record.get("loader", "parquet"),
                                     data_files={record["split"]: [str(f) for f in files]},
                                     split=record["split"], features=features)


def _load_hub(spec: dict[str, Any], name: str, dataset_id: str, split: str) -> Any:
    """``datasets.load_dataset`` of the hub id (prepares every split of the dataset)."""
    prefer_offline_when_unreachable()  # no minute of retries when there is no network
    try:
        import datasets
    except ImportError:
        raise MissingDataError("The `datasets` package is missing: reinstall oodbench "
                               "(`pip install -e .`).") from None
    try:
        return datasets.load_dataset(dataset_id, spec.get("config"), split=split)
    except (ConnectionError, OSError, ValueError) as exc:
        text = str(exc).lower()
        if "offline" in text or "connect" in text or "reach" in text or \
                os.environ.get("HF_HUB_OFFLINE"):
            raise OfflineError(
                f"Dataset {name!r}: cannot load Hugging Face dataset {dataset_id!r} "
                f"(split {split}) offline and it is not in the local cache; "
                f"{_fetch_hint(spec)}."
            ) from None
        raise _missing(spec, name, f"Hugging Face dataset {dataset_id!r}: {exc}") from None


def _selection(spec: dict[str, Any], raw: np.ndarray | None, total: int,
               classes: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept (by ``labels:``) and their suite labels (-1 for an OOD set)."""
    labels = np.full(total, -1, dtype=np.int64)
    keep = np.arange(total)
    if raw is not None:
        wanted = spec.get("labels")  # dataset label ids of the classes, aligned with `classes`
        if wanted is not None:
            mapping = {int(w): i for i, w in enumerate(wanted)}
            keep = np.nonzero(np.isin(raw, list(mapping)))[0]
            if classes is not None:
                labels = np.asarray([mapping[int(raw[i])] for i in keep], dtype=np.int64)
        elif classes is not None:
            labels = raw.astype(np.int64)
    if classes is None:
        labels = np.full(len(keep), -1, dtype=np.int64)
    return keep, labels


def _huggingface(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    dataset_id = str(spec.get("id", ""))
    split = str(spec.get("split", "test"))
    fetched = hf_fetched(dataset_id, spec.get("config"), split)
    if fetched is not None:
        record, files = fetched
        try:
            ds = _load_fetched(record, files)
        except (OSError, ValueError) as exc:
            raise _missing(spec, name, f"the fetched files of Hugging Face dataset "
                                       f"{dataset_id!r} ({split}) do not load: "
                                       f"{' '.join(str(exc).split())[:200]}") from None
        identity: Any = ["fetched", record["revision"], record["files"]]
    else:
        ds = _load_hub(spec, name, dataset_id, split)
        identity = getattr(ds, "_fingerprint", "")
    image_col = str(spec.get("image", "image"))
    label_col = spec.get("label", "label")
    if classes is not None and label_col:
        check_class_names(ds, str(label_col), spec.get("labels"), classes, name, dataset_id)
    raw = np.asarray(ds[label_col]) if label_col and label_col in ds.column_names else None
    keep, labels = _selection(spec, raw, len(ds), classes)
    _check_count(spec, name, len(keep), f"in Hugging Face dataset {dataset_id!r} ({split})")
    ds = ds.select(keep.tolist()) if len(keep) != len(ds) else ds
    keys = [f"hf://{dataset_id}/{split}/{int(i)}" for i in keep]
    fingerprint = content_key(dataset_id, split, identity, keep.tolist())
    return ImageList(name, keys, labels[: len(keys)], fingerprint, ds, image_col)


def probe_source(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> int:
    """How many images a source has on this machine, downloading nothing (``suites show``).

    Hugging Face sets are looked up in the fetched files (reading only the label column) or,
    with the HF libraries switched offline, in the ``datasets`` cache; missing data raises.
    """
    if spec.get("type") != "hf":
        return len(resolve_source(spec, name, classes))
    dataset_id = str(spec.get("id", ""))
    split = str(spec.get("split", "test"))
    fetched = hf_fetched(dataset_id, spec.get("config"), split)
    if fetched is None:
        with hub_offline():
            return len(_huggingface(spec, name, classes))
    import pyarrow.parquet as pq

    label_col = spec.get("label", "label")
    wanted = spec.get("labels")
    count = 0
    for file in fetched[1]:
        if wanted is None or not label_col:
            count += pq.ParquetFile(file).metadata.num_rows
        else:
            column = pq.read_table(file, columns=[str(label_col)]).column(0).to_numpy()
            count += int(np.isin(column, [int(w) for w in wanted]).sum())
    _check_count(spec, name, count, f"in Hugging Face dataset {dataset_id!r} ({split})")
    return count


def fetch_hf_split(dataset_id: str, config: str | None, split: str,
                   log: Callable[[str], None] = print) -> str:
    """Download only the files of one split of a hub dataset into the HF hub cache, record
    them (``hf_record_path``) and prepare the split once. Returns what happened, for a log line.

    huggingface_hub shows progress and resumes an interrupted download by itself. A dataset
    whose split files are not parquet falls back to ``datasets.load_dataset`` (every split).
    """
    if hf_fetched(dataset_id, config, split) is not None:
        return "already fetched"
    where = f"Hugging Face dataset {dataset_id!r} (split {split})"
    if prefer_offline_when_unreachable():
        from huggingface_hub import constants

        raise OfflineError(
            f"Cannot fetch {where}: the hub ({constants.ENDPOINT}) is not reachable or "
            f"HF_HUB_OFFLINE is set; connect (HTTPS_PROXY / HF_ENDPOINT) and run it again.")
    import datasets
    import huggingface_hub

    try:
        builder = datasets.load_dataset_builder(dataset_id, config)  # metadata: no data files
        split_files = (builder.config.data_files or {}).get(split)
        if split_files is None:
            splits = ", ".join(str(k) for k in (builder.config.data_files or {}))
            raise OODBenchError(f"{where} has no split {split!r}; its splits: {splits or '?'}.")
        matches = [_HF_FILE.match(str(url)) for url in split_files]
        if not matches or not all(m and str(m["path"]).endswith(".parquet") for m in matches):
            log(f"{dataset_id}: its {split} files are not parquet: preparing the whole dataset")
            datasets.load_dataset(dataset_id, config, split=split)
            return "prepared with datasets.load_dataset (every split)"
        repos = {urllib.parse.unquote(m["repo"] or m["repo2"]) for m in matches if m}
        revisions = {urllib.parse.unquote(m["rev"] or m["rev2"]) for m in matches if m}
        if len(repos) != 1 or len(revisions) != 1:
            raise OODBenchError(f"{where}: its files come from several repositories or "
                                f"revisions ({sorted(repos)}, {sorted(revisions)}).")
        repo, revision = repos.pop(), revisions.pop()
        paths = [urllib.parse.unquote(str(m["path"])) for m in matches if m]
        log(f"{dataset_id} ({split}): {len(paths)} file(s) of revision {revision[:12]}")
        huggingface_hub.snapshot_download(repo, repo_type="dataset", revision=revision,
                                          allow_patterns=paths)
    except OODBenchError:
        raise
    except Exception as exc:  # hub errors come in many classes; one line is what users need
        text = " ".join(str(exc).split())[:300]
        raise MissingDataError(f"Could not fetch {where}: {type(exc).__name__}: {text}") \
            from None
    features = builder.info.features.to_dict() if builder.info.features is not None else None
    record = {"repo": repo, "config": config, "split": split, "revision": revision,
              "loader": "parquet", "files": paths, "features": features}
    target = hf_record_path(dataset_id, config, split)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(record, indent=1) + "\n")
    fetched = hf_fetched(dataset_id, config, split)
    if fetched is None:
        raise MissingDataError(f"Could not fetch {where}: the files are not in the hub cache "
                               f"after the download; run it again.")
    _load_fetched(*fetched)  # prepare once: the first run starts at once
    return f"fetched {len(paths)} file(s)"

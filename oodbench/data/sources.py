"""Dataset sources: where a suite's images come from, resolved to an :class:`ImageList`.

Source specs are small mappings in suite files:

* ``{type: imagefolder, root: PATH, class_dirs: [...]}``: images under ``root``; for an ID set
  the sub-folder of each class (``class_dirs`` aligned with the suite's classes, default the
  class names); for an OOD set every image below ``root``. ``${data}`` expands to the data dir.
* ``{type: offline, split: test, select: {concept|category: [...]}}``: the offline mini world.
* ``{type: hf, id: DATASET_ID, split: SPLIT, image: image, label: label, labels: [...]}``: a
  Hugging Face ``datasets`` dataset (the hub, or its local cache with ``HF_HUB_OFFLINE=1``).
  ``labels`` are the dataset's label ids of the suite's classes, in the suite's class order. For
  an ID set the suite's class names are checked against the dataset's ``ClassLabel`` names when
  it loads (case, ``_`` / space and a ``001.`` prefix aside): a swapped or shifted list stops
  the run with one line instead of scoring images against the wrong prompts.

Each source may carry ``obtain: "how to get it"``, shown when the data is missing, and
``expected_count: N``, the published number of images of the set (after any class selection):
a different count stops the run with one line (a partial download must not give a number).

An imagefolder source may name ``manifest: FILE`` (relative to the suite file): one
``<sha256>  <relative/path>`` line per image, sorted by path (``sha256sum`` format, paths
relative to ``root``). A run only compares the file *list* with it (hashing 50k images every
run is too slow); ``oodbench suites verify`` hashes the contents.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oodbench.cache import atomic_write_text, content_key
from oodbench.errors import MissingDataError, OfflineError, OODBenchError
from oodbench.hub import prefer_offline_when_unreachable
from oodbench.paths import data_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
# keys that check or locate a copy without changing which images are read: never in the key
# (``_suite`` is set by the suite parser beside ``manifest``, for the verify command hint)
CHECK_KEYS = ("obtain", "expected_count", "manifest", "_suite")
Progress = Callable[[int, int], None]


class ClassNameMismatchError(OODBenchError):
    """A suite's class names disagree with the dataset's own names for the same label ids."""


@dataclass
class ImageList:
    """An ordered list of images with ID class labels (-1 for OOD) and a content fingerprint."""

    name: str
    keys: list[str]  # file paths, or "hf://<id>/<split>/<row>" references
    labels: np.ndarray
    fingerprint: str
    hf_dataset: Any = field(default=None, repr=False)
    hf_image_column: str = "image"

    def __len__(self) -> int:
        return len(self.keys)

    def open(self, index: int) -> Image.Image:
        """Open image ``index`` as RGB; raises on unreadable data (the loader records why)."""
        if self.hf_dataset is not None:
            image = self.hf_dataset[index][self.hf_image_column]
        else:
            with Image.open(self.keys[index]) as img:
                img.load()
                image = img
        return image.convert("RGB")

    def subset(self, indices: Sequence[int], name: str | None = None) -> ImageList:
        idx = list(indices)
        keys = [self.keys[i] for i in idx]
        return ImageList(name or self.name, keys, self.labels[idx],
                         content_key(self.fingerprint, idx), self.hf_dataset, self.hf_image_column)


def expand(path: str) -> Path:
    return Path(os.path.expandvars(path.replace("${data}", str(data_dir())))).expanduser()


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


def _missing(spec: dict[str, Any], name: str, what: str) -> MissingDataError:
    how = spec.get("obtain") or "see `oodbench suites show <suite>`"
    return MissingDataError(f"Dataset {name!r} is missing: {what}. To obtain it: {how}")


def _list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def _files_fingerprint(spec: dict[str, Any], files: Sequence[Path], root: Path,
                       labels: np.ndarray) -> str:
    # path + size per file: cheap on 50k images yet catches added, removed and replaced files
    entries = [(str(f.relative_to(root)), f.stat().st_size) for f in files]
    described = {k: v for k, v in spec.items() if k not in CHECK_KEYS}
    return content_key(described, entries, labels.tolist())


def _check_count(spec: dict[str, Any], name: str, found: int, where: str) -> None:
    expected = spec.get("expected_count")
    if expected is not None and int(expected) != found:
        how = spec.get("obtain") or "see `oodbench suites show <suite>`"
        raise MissingDataError(
            f"Dataset {name!r} has {found} images {where}, expected {int(expected)} (an "
            f"incomplete download or extra files); fix the copy. To obtain it: {how}")


def folder_files(spec: dict[str, Any], name: str,
                 classes: Sequence[str] | None) -> tuple[Path, list[Path], list[int]]:
    """Root, files and labels an imagefolder source selects (no files when root is absent)."""
    root = expand(str(spec.get("root", "")))
    files: list[Path] = []
    labels: list[int] = []
    if not root.is_dir():
        return root, files, labels
    if classes is None:
        subdirs = spec.get("class_dirs")  # an OOD set made of some class folders (hard OOD)
        files = ([f for sub in subdirs for f in _list_images(root / str(sub))]
                 if isinstance(subdirs, list) else _list_images(root))
        labels = [-1] * len(files)
    else:
        class_dirs = spec.get("class_dirs") or list(classes)
        if class_dirs == "sorted":  # torchvision ImageFolder order (ImageNet: sorted wnids)
            class_dirs = sorted(p.name for p in root.iterdir() if p.is_dir())
        if len(class_dirs) != len(classes):
            raise OODBenchError(f"Dataset {name!r}: class_dirs has {len(class_dirs)} entries "
                                f"for {len(classes)} classes.")
        for index, sub in enumerate(class_dirs):
            found = _list_images(root / str(sub))
            files += found
            labels += [index] * len(found)
    return root, files, labels


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
    _check_count(spec, name, len(files), f"under {root}")
    label_array = np.asarray(labels, dtype=np.int64)
    return ImageList(name, [str(f) for f in files], label_array,
                     _files_fingerprint(spec, files, root, label_array))


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


def _huggingface(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    dataset_id = str(spec.get("id", ""))
    split = str(spec.get("split", "test"))
    prefer_offline_when_unreachable()  # no minute of retries when there is no network
    try:
        import datasets
    except ImportError:
        raise MissingDataError("The `datasets` package is needed: pip install datasets") from None
    try:
        ds = datasets.load_dataset(dataset_id, spec.get("config"), split=split)
    except (ConnectionError, OSError, ValueError) as exc:
        text = str(exc).lower()
        if "offline" in text or "connect" in text or "reach" in text or \
                os.environ.get("HF_HUB_OFFLINE"):
            how = spec.get("obtain") or ("download it on a machine with hub access (HF_HOME "
                                         "cache) or use an imagefolder source")
            raise OfflineError(
                f"Dataset {name!r}: cannot load Hugging Face dataset {dataset_id!r} "
                f"(split {split}) offline and it is not in the local cache; {how}."
            ) from None
        raise _missing(spec, name, f"Hugging Face dataset {dataset_id!r}: {exc}") from None
    image_col = str(spec.get("image", "image"))
    label_col = spec.get("label", "label")
    if classes is not None and label_col:
        check_class_names(ds, str(label_col), spec.get("labels"), classes, name, dataset_id)
    labels = np.full(len(ds), -1, dtype=np.int64)
    keep = np.arange(len(ds))
    if label_col and label_col in ds.column_names:
        raw = np.asarray(ds[label_col])
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
    _check_count(spec, name, len(keep), f"in Hugging Face dataset {dataset_id!r} ({split})")
    ds = ds.select(keep.tolist()) if len(keep) != len(ds) else ds
    keys = [f"hf://{dataset_id}/{split}/{int(i)}" for i in keep]
    fingerprint = content_key(dataset_id, split, getattr(ds, "_fingerprint", ""), keep.tolist())
    return ImageList(name, keys, labels[: len(keys)], fingerprint, ds, image_col)

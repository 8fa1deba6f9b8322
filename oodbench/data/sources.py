"""Dataset sources: where a suite's images come from, resolved to an :class:`ImageList`.

Source specs are small mappings in suite files:

* ``{type: imagefolder, root: PATH, class_dirs: [...]}``: images under ``root``; for an ID set
  the sub-folder of each class (``class_dirs`` aligned with the suite's classes, default the
  class names); for an OOD set every image below ``root``. ``${data}`` expands to the data dir.
* ``{type: offline, split: test, select: {concept|category: [...]}}``: the offline mini world.
* ``{type: hf, id: DATASET_ID, split: SPLIT, image: image, label: label, labels: [...]}``: a
  Hugging Face ``datasets`` dataset (the hub, or its local cache with ``HF_HUB_OFFLINE=1``).

Each source may carry ``obtain: "how to get it"``, shown when the data is missing, and
``expected_count: N``, the published number of images of the set (after any class selection):
a different count stops the run with one line (a partial download must not give a number).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oodbench.cache import content_key
from oodbench.errors import MissingDataError, OfflineError, OODBenchError
from oodbench.hub import prefer_offline_when_unreachable
from oodbench.paths import data_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


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
    # obtain and expected_count say nothing about which images are read: not in the key
    described = {k: v for k, v in spec.items() if k not in ("obtain", "expected_count")}
    return content_key(described, entries, labels.tolist())


def _check_count(spec: dict[str, Any], name: str, found: int, where: str) -> None:
    expected = spec.get("expected_count")
    if expected is not None and int(expected) != found:
        how = spec.get("obtain") or "see `oodbench suites show <suite>`"
        raise MissingDataError(
            f"Dataset {name!r} has {found} images {where}, expected {int(expected)} (an "
            f"incomplete download or extra files); fix the copy. To obtain it: {how}")


def _imagefolder(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    root = expand(str(spec.get("root", "")))
    if not root.is_dir():
        raise _missing(spec, name, f"folder {root} does not exist")
    files: list[Path] = []
    labels: list[int] = []
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
    if not files:
        raise _missing(spec, name, f"no images under {root}")
    _check_count(spec, name, len(files), f"under {root}")
    label_array = np.asarray(labels, dtype=np.int64)
    return ImageList(name, [str(f) for f in files], label_array,
                     _files_fingerprint(spec, files, root, label_array))


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

"""An ordered list of images (:class:`ImageList`) and what every source shares: path
expansion, the missing-data line and the expected-count check (sources: :mod:`.sources`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oodbench.cache import ContentIndex, content_key
from oodbench.errors import MissingDataError, OODBenchError
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


def obtain_hint(spec: dict[str, Any]) -> str:
    """The source's ``obtain`` text with ``${data}`` written out as this machine's data dir."""
    suite = spec.get("_suite", "<suite>")
    how = spec.get("obtain") or f"see `oodbench suites show {suite}`"
    return str(how).replace("${data}", str(data_dir()))


def missing_error(spec: dict[str, Any], name: str, what: str) -> MissingDataError:
    return MissingDataError(f"Dataset {name!r} is missing: {what}. To obtain it: "
                            f"{obtain_hint(spec)}")


def check_count(spec: dict[str, Any], name: str, found: int, where: str) -> None:
    expected = spec.get("expected_count")
    if expected is not None and int(expected) != found:
        raise MissingDataError(
            f"Dataset {name!r} has {found} images {where}, expected {int(expected)} (an "
            f"incomplete download or extra files); fix the copy. To obtain it: "
            f"{obtain_hint(spec)}")



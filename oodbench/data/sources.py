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

This module resolves a spec; the image list and shared checks live in :mod:`.images`, image
folders in :mod:`.folders`, manifests in :mod:`.manifests`, Hugging Face sets in
:mod:`.hub_source`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.data.folders import files_fingerprint, folder_files, imagefolder_source
from oodbench.data.hub_source import (
    fetch_hf_split,
    hf_fetched,
    hf_record_path,
    hf_source,
    hub_offline,
    normalise_class_name,
)
from oodbench.data.images import (
    CHECK_KEYS,
    ClassNameMismatchError,
    ImageList,
    check_count,
    expand,
    missing_error,
    obtain_hint,
    refuse_shared_images,
    shared_images,
    to_rgb,
)
from oodbench.data.manifests import (
    ManifestDiff,
    compare_listing,
    hash_files,
    read_manifest,
    relative_paths,
    verify_manifest,
    write_manifest,
)
from oodbench.errors import OODBenchError

__all__ = [  # the sources' API, wherever it lives (images, folders, manifests, hub_source)
    "CHECK_KEYS", "ClassNameMismatchError", "ImageList", "ManifestDiff", "compare_listing",
    "expand", "fetch_hf_split", "folder_files", "hash_files", "hf_record_path",
    "normalise_class_name", "obtain_hint", "probe_source", "read_manifest", "refuse_shared_images",
    "relative_paths", "resolve_source", "shared_images", "to_rgb", "verify_manifest",
    "write_manifest",
]

def resolve_source(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    """Resolve a source spec; ``classes`` given = an ID set (labels = class indices)."""
    kind = spec.get("type")
    if kind == "imagefolder":
        return imagefolder_source(spec, name, classes)
    if kind == "offline":
        return _offline(spec, name, classes)
    if kind == "hf":
        return hf_source(spec, name, classes)
    raise OODBenchError(
        f"Dataset {name!r}: unknown source type {kind!r}; use imagefolder, offline or hf."
    )




def _offline(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    from oodbench.data.offline import load_offline_source

    paths, keys = load_offline_source(spec)
    if not paths:
        raise missing_error(spec, name, "the selection matched no image of the offline catalogue")
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
                     files_fingerprint(spec, paths, root, labels))



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
            return len(hf_source(spec, name, classes))
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
    check_count(spec, name, count, f"in Hugging Face dataset {dataset_id!r} ({split})")
    return count



"""Image folders (and OpenOOD image lists) as sources, keyed by their content."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.cache import content_key
from oodbench.data.images import (
    CHECK_KEYS,
    IMAGE_EXTENSIONS,
    IMGLIST_KEYS,
    ImageList,
    check_count,
    expand,
    missing_error,
    obtain_hint,
)
from oodbench.data.manifests import compare_listing, read_manifest, relative_paths, verify_command
from oodbench.errors import MissingDataError, OODBenchError


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


def files_fingerprint(spec: dict[str, Any], files: Sequence[Path], root: Path,
                       labels: np.ndarray) -> str:
    # path + size per file: cheap on 50k images yet catches added, removed and replaced files
    entries = [(str(f.relative_to(root)), f.stat().st_size) for f in files]
    # an image list that is not here does not change which images are read
    unused = () if image_list(spec) else IMGLIST_KEYS
    described = {k: v for k, v in spec.items() if k not in CHECK_KEYS and k not in unused}
    return content_key(described, entries, labels.tolist())


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


def imagefolder_source(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    root, files, labels = folder_files(spec, name, classes)
    if not root.is_dir():
        raise missing_error(spec, name, f"folder {root} does not exist")
    if not files:
        raise missing_error(spec, name, f"no images under {root}")
    if spec.get("manifest"):  # before the count: it says which files differ
        diff = compare_listing(read_manifest(spec, name), relative_paths(files, root))
        if not diff.ok:
            raise MissingDataError(
                f"Dataset {name!r} under {root} does not match its manifest: {diff.summary()}; "
                f"check the copy with `{verify_command(spec, name)}`.")
    if image_list(spec) is None:  # a list defines its set: every listed image was checked
        check_count(spec, name, len(files), f"under {root}")
    label_array = np.asarray(labels, dtype=np.int64)
    return ImageList(name, [str(f) for f in files], label_array,
                     files_fingerprint(spec, files, root, label_array), content_keyed=True)

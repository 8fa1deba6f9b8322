"""Hugging Face ``datasets`` sources: fetched split files, the hub, class-name checks."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.cache import atomic_write_text, content_key
from oodbench.data.images import (
    ClassNameMismatchError,
    ImageList,
    check_count,
    missing_error,
    obtain_hint,
)
from oodbench.errors import MissingDataError, OfflineError, OODBenchError
from oodbench.hub import prefer_offline_when_unreachable
from oodbench.paths import data_dir


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
        raise missing_error(spec, name, f"Hugging Face dataset {dataset_id!r}: {exc}") from None


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


def hf_source(spec: dict[str, Any], name: str, classes: Sequence[str] | None) -> ImageList:
    dataset_id = str(spec.get("id", ""))
    split = str(spec.get("split", "test"))
    fetched = hf_fetched(dataset_id, spec.get("config"), split)
    if fetched is not None:
        record, files = fetched
        try:
            ds = _load_fetched(record, files)
        except (OSError, ValueError) as exc:
            raise missing_error(spec, name, f"the fetched files of Hugging Face dataset "
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
    check_count(spec, name, len(keep), f"in Hugging Face dataset {dataset_id!r} ({split})")
    ds = ds.select(keep.tolist()) if len(keep) != len(ds) else ds
    keys = [f"hf://{dataset_id}/{split}/{int(i)}" for i in keep]
    fingerprint = content_key(dataset_id, split, identity, keep.tolist())
    return ImageList(name, keys, labels[: len(keys)], fingerprint, ds, image_col)


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

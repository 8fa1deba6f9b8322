"""The small data types that flow between components during one run."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from oodbench.cache import atomic_write_text


@dataclass
class RunContext:
    """Where and how a run executes. Components take the device from here; none picks its own."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    cache_dir: Path = Path(".cache")
    seed: int = 0
    batch_size: int = 256
    num_workers: int = 0
    offline: bool = False
    # image decoding (``--decode``): "cpu" = PIL in DataLoader workers; "gpu" = workers read
    # bytes, ``device`` decodes JPEGs (nvJPEG on CUDA) and preprocesses them as tensors
    # (oodbench/decode.py); falls back to "cpu" per image or per backbone where it cannot apply
    decode: Literal["cpu", "gpu"] = "cpu"
    # stages whose cached artefacts are recomputed (``--rerun-from``): labels, synthesize, finetune
    refresh: tuple[Literal["labels", "synthesize", "finetune"], ...] = ()

    @staticmethod
    def resolve_device(name: str) -> torch.device:
        """``auto`` picks CUDA when present, else CPU; a device this machine lacks is a
        one-line usage error here, not a traceback later."""
        from oodbench.errors import ParameterError

        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(name)
        except (RuntimeError, ValueError):
            raise ParameterError(f"--device {name!r} is not a device; use auto, cpu, cuda or "
                                 f"cuda:N.") from None
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise ParameterError(f"--device {name}: no CUDA GPU is visible on this machine; "
                                     f"use --device cpu (or auto).")
            if device.index is not None and device.index >= count:
                raise ParameterError(f"--device {name}: this machine has {count} CUDA GPU(s) "
                                     f"(cuda:0..cuda:{count - 1}).")
        elif device.type not in ("cpu", "mps"):
            raise ParameterError(f"--device {name!r}: oodbench runs on cpu or cuda; use auto, "
                                 f"cpu, cuda or cuda:N.")
        return device

    @staticmethod
    def default_workers() -> int:
        """DataLoader workers sized to the machine: all cores but one, at most 16."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(0, min(16, (cores or 1) - 1))


@dataclass
class FeatureSet:
    """Encoded images of one dataset: row i of ``features`` is image ``paths[i]``.

    ``labels`` holds ID class indices (or -1 for OOD/unknown). Images that could not be read are
    not rows; they are listed in ``skipped`` as (path, reason).
    """

    features: torch.Tensor  # [N, D] float32, L2-normalised
    labels: np.ndarray  # [N] int64
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclass
class LabelBank:
    """A list of extra (outlier / negative) labels and how they were produced.

    It is an artefact: generated once, saved as JSON (labels + provenance), shared with
    ``oodbench labels export/import``. Text embeddings live in the feature cache, keyed by the
    backbone and ``templates``.
    """

    labels: list[str]
    generator: str
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    templates: list[str] = field(default_factory=lambda: ["a photo of a {}."])
    meta: dict[str, Any] = field(default_factory=dict)
    # optional per-label group tags (e.g. "noun"/"adjective", "near"/"far"), same length as labels
    groups: list[str] | None = None
    # optional per-label prompt templates overriding ``templates`` for that label's group
    group_templates: dict[str, list[str]] = field(default_factory=dict)

    FORMAT = "oodbench.labelbank/1"

    def to_json(self) -> str:
        data = {"format": self.FORMAT, **dataclasses.asdict(self)}
        return json.dumps(data, indent=1, ensure_ascii=False)

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> LabelBank:
        from oodbench.errors import OODBenchError

        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise OODBenchError(f"Cannot read label bank {path}: {exc}.") from None
        if not isinstance(data, dict) or data.pop("format", None) != cls.FORMAT:
            raise OODBenchError(f"{path} is not an oodbench label bank (format {cls.FORMAT}).")
        problem = _bank_problem(data)
        if problem:
            raise OODBenchError(f"Label bank {path}: {problem}; export it again or fix the file.")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def prompts_for(self, index: int) -> list[str]:
        if self.groups is not None and self.groups[index] in self.group_templates:
            return self.group_templates[self.groups[index]]
        return self.templates


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _bank_problem(data: dict[str, Any]) -> str:
    """What is wrong with a label bank read from a file ("" if nothing): a string where a list
    belongs would otherwise be split into letters."""
    if not _is_strings(data.get("labels")):
        return "`labels` must be a list of strings"
    if not isinstance(data.get("generator", ""), str):
        return "`generator` must be a string"
    if "templates" in data and not _is_strings(data["templates"]):
        return "`templates` must be a list of strings"
    for key in ("params", "meta", "group_templates"):
        if not isinstance(data.get(key, {}), dict):
            return f"`{key}` must be an object"
    if not all(_is_strings(v) for v in data.get("group_templates", {}).values()):
        return "`group_templates` must map groups to lists of strings"
    groups = data.get("groups")
    if groups is not None and not (_is_strings(groups) and len(groups) == len(data["labels"])):
        return "`groups` must be a list of strings, one per label"
    return ""


@dataclass
class SampleSet:
    """Images a synthesizer produced (files on disk) with one manifest entry per image."""

    paths: list[Path]
    manifest: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextHead:
    """What a scorer scores against: ID class embeddings plus optional extra label embeddings.

    Fine-tuners return a new head (tuned label features, an image-feature adapter); the runner
    applies ``image_adapter`` to every image feature before scoring and before ID accuracy.
    """

    id_features: torch.Tensor  # [C, D], row c = ID class c, L2-normalised
    id_labels: list[str]
    extra_features: torch.Tensor | None = None  # [M, D] outlier / negative label embeddings
    extra_labels: list[str] = field(default_factory=list)
    image_adapter: Callable[[torch.Tensor], torch.Tensor] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.image_adapter is None else self.image_adapter(features)

    def replace(self, **changes: Any) -> TextHead:
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str) -> TextHead:
        """The same head with its tensors (features, adapter, tensors in ``meta``) on ``device``.

        A module adapter that lives elsewhere is moved as a copy: the caller's head is untouched.
        """
        device = torch.device(device)
        adapter = self.image_adapter
        if isinstance(adapter, torch.nn.Module) and any(
            p.device != device for p in itertools.chain(adapter.parameters(), adapter.buffers())
        ):
            adapter = copy.deepcopy(adapter).to(device)
        return self.replace(
            id_features=self.id_features.to(device),
            extra_features=None if self.extra_features is None
            else self.extra_features.to(device),
            image_adapter=adapter,
            meta={k: v.to(device) if isinstance(v, torch.Tensor) else v
                  for k, v in self.meta.items()},
        )

"""The one interface every vision-language backbone implements (CLIP, SigLIP, the offline mini)."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from PIL import Image

from oodbench.components import Component
from oodbench.errors import ParameterError, ResourceError

# A backbone parameter (open_clip, transformers): the resize filter of the image preprocessing.
# "model" keeps the model's own transform (open_clip and the OpenAI CLIP processor: bicubic);
# "bilinear" is what MCM, NegLabel, CSP and EOE ran (torchvision Resize(224) -> CenterCrop(224)
# -> CLIP mean/std); a method whose published numbers used it selects it (oodbench.method).
Interpolation = Literal["model", "bilinear", "bicubic"]


@dataclasses.dataclass(frozen=True)
class TensorPreprocess:
    """A backbone's image preprocessing stated as data, so tensor ops can reproduce it.

    The GPU decode path (``--decode gpu``, :mod:`oodbench.decode`) decodes JPEGs to uint8 RGB
    tensors and then applies: resize (``shortest``: the shorter side becomes ``size`` and the
    longer one ``int(size * long / short)``, as torchvision's ``Resize(int)``; ``squash``: to
    ``size`` = (height, width)), a centre crop to ``crop`` = (height, width) if given, rounding
    to 8 bits (the PIL path resizes 8-bit images), ``/ 255`` and ``(x - mean) / std``.
    ``crop_offset`` says how the crop's top-left corner is rounded: ``round`` as torchvision's
    ``CenterCrop`` (banker's rounding of half-pixels), ``floor`` as Hugging Face processors.
    """

    size: int | tuple[int, int]
    interpolation: Literal["bilinear", "bicubic"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: Literal["shortest", "squash"] = "shortest"
    crop: tuple[int, int] | None = None
    crop_offset: Literal["round", "floor"] = "round"
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.resize_mode == "shortest" and (not isinstance(self.size, int) or not self.crop):
            # without a crop the output size varies per image and batches cannot be stacked
            raise ValueError("resize_mode 'shortest' takes an int size and a crop")
        if self.resize_mode == "squash" and isinstance(self.size, int):
            raise ValueError("resize_mode 'squash' takes a (height, width) size")
        if self.crop is not None:
            low = (self.size, self.size) if isinstance(self.size, int) else self.size
            if self.crop[0] > low[0] or self.crop[1] > low[1]:  # would pad: not expressed here
                raise ValueError("a crop larger than the resized image is not supported")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"unsupported interpolation {self.interpolation!r}")

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the preprocessed image."""
        if self.crop is not None:
            return self.crop
        assert not isinstance(self.size, int)  # __post_init__: only "squash" may omit the crop
        return self.size

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Backbone(Component, ABC):
    """A frozen image encoder and text encoder that share one embedding space.

    Subclasses are components: dataclass fields are their parameters (set from the CLI
    with ``--backbone-param`` or from files). ``load(device)`` is called once before use; encoders
    return L2-normalised float32 embeddings of width ``embed_dim`` on the CPU or on ``device``.
    """

    kind: ClassVar[str] = "backbone"

    @abstractmethod
    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        """Load weights onto ``device``; raise OfflineError/MissingDataError naming the fix."""

    @property
    @abstractmethod
    def embed_dim(self) -> int:
        """Width of the shared embedding space."""

    @property
    @abstractmethod
    def logit_scale(self) -> float:
        """The model's learned inverse temperature (100 for OpenAI CLIP)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever the embeddings could change (weights, preprocessing).

        Feature caches are keyed by it, so it must name the weights' identity (tag, path and
        size, or a checksum) and the preprocessing, not just the architecture.
        """

    @abstractmethod
    def preprocess(self) -> Callable[[Image.Image], torch.Tensor]:
        """PIL image (any mode) -> CHW float tensor, ready for ``encode_images``. Picklable."""

    def interpolation_used(self) -> str | None:
        """The resize filter ``preprocess()`` runs (``bilinear``/``bicubic``), for the result
        record; None for a backbone without an ``interpolation`` parameter (the offline mini)."""
        return None

    def weights_identity(self) -> dict[str, Any] | None:
        """Where a ``--weights`` run's weights came from, for the result record (its backbone
        section, its file name and the leaderboard row): e.g. ``{"path": ..., "sha256": ...,
        "tag": ...}``. None when the run names no weights file (the backbone's own weights)."""
        return None

    def text_fingerprint(self) -> str:
        """What the text embeddings depend on: ``fingerprint()`` without the image-side choices
        a run can make (``interpolation``), so label banks are encoded once per model."""
        return self.fingerprint()

    def tensor_preprocess(self) -> TensorPreprocess | None:
        """``preprocess()`` as a :class:`TensorPreprocess`, or None if tensor ops cannot
        reproduce it (e.g. alpha compositing, padding, an unknown step).

        Optional: the GPU decode path uses it; None makes that path fall back to the CPU one.
        """
        return None

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] preprocessed batch -> [N, D] L2-normalised embeddings (no grad)."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts (already formatted prompts) -> [N, D] L2-normalised embeddings (no grad)."""

    def encode_images_differentiable(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] RGB in [0, 1] (any size) -> [N, D] normalised embeddings, WITH gradients.

        Optional: guided synthesis (SynOOD's offline classifier) needs it. Resizing and
        normalisation happen on tensors here, so gradients reach the input images.
        """
        raise NotImplementedError(f"backbone {self.name!r} has no differentiable image path")

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, P, D] normalised local (patch) embeddings, for GL-MCM-style scores.

        Optional: backbones without local features raise ``NotImplementedError``.
        """
        raise NotImplementedError(f"backbone {self.name!r} has no patch (local) features")

    def encode_texts_no(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> [N, D] L2-normalised embeddings of CLIPN's "no" text tower (no grad), in
        the space of ``encode_images``; the "no" prompts' mean is applied inside the tower.

        Optional: CLIPN backbones (``clipn-b16``, ``mini-clipn``) implement it, and
        :func:`oodbench.baselines.clipn.has_no_tower` tells whether a backbone does; the
        others raise ``NotImplementedError``. ``fingerprint()`` must name the "no" tower's
        weights (its embeddings are cached by it).
        """
        raise NotImplementedError(f"backbone {self.name!r} has no CLIPN 'no' text tower")

    @property
    def device(self) -> torch.device:
        return getattr(self, "_device", torch.device("cpu"))


_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: str | Path) -> str:
    """The sha256 of a weights file, hashed once per (path, size, mtime).

    Remembered in this process and on disk (``<cache>/file-sha256``), so a 600 MB checkpoint is
    read once, not on every run; a changed file (size or mtime) is hashed again.
    """
    from oodbench.cache import ArtifactCache, content_key
    from oodbench.download import file_sha256
    from oodbench.paths import cache_dir

    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat()
    stamp = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if stamp in _SHA256_MEMO:
        return _SHA256_MEMO[stamp]
    cache, key = ArtifactCache(cache_dir()), content_key("file-sha256/1", *stamp)
    stored = cache.get_json("file-sha256", key)
    if isinstance(stored, dict) and isinstance(stored.get("sha256"), str):
        digest = stored["sha256"]
    else:
        digest = file_sha256(resolved)
        with suppress(OSError):  # a read-only cache: still remembered in this process
            cache.put_json("file-sha256", key, {"path": stamp[0], "size": stamp[1],
                                                "mtime_ns": stamp[2], "sha256": digest})
    _SHA256_MEMO[stamp] = digest
    return digest


def encode_texts_halving(encode: Callable[[list[str]], torch.Tensor],
                         texts: Sequence[str]) -> torch.Tensor:
    """``encode(texts)`` in one call; on CUDA out-of-memory halve the batch and retry, down to 1.

    The text side's counterpart of the image path's fallback (:mod:`oodbench.features`): a
    label bank of 10k+ prompts fits any GPU in smaller batches. Out of memory at batch size 1
    ends in one :class:`ResourceError` line naming the fix.
    """
    items = list(texts)
    if not items:
        return encode(items)
    chunk, start, first = len(items), 0, len(items)
    outputs = []
    while start < len(items):
        part = items[start : start + chunk]
        try:
            outputs.append(encode(part))
            start += len(part)
        except torch.cuda.OutOfMemoryError:
            if chunk == 1:
                raise ResourceError(
                    f"Out of GPU memory encoding texts even at batch size 1 (halved from "
                    f"{first}); free GPU memory, use a smaller backbone, or run with --device cpu."
                ) from None
            torch.cuda.empty_cache()
            chunk = max(1, chunk // 2)
    return torch.cat(outputs)


def with_interpolation(transform: Any, interpolation: str) -> Any:
    """A torchvision ``Compose`` whose one ``Resize`` uses ``interpolation`` ("model": as is).

    Everything else (size, antialiasing, crop, normalisation) is the model's own, so
    "bilinear" on OpenAI CLIP gives Resize(224, bilinear) -> CenterCrop(224) -> CLIP mean/std.
    """
    if interpolation == "model":
        return transform
    from torchvision import transforms as T

    steps = list(getattr(transform, "transforms", None) or [])
    resizes = [i for i, step in enumerate(steps) if type(step) is T.Resize]
    if len(resizes) != 1:
        raise ParameterError(f"interpolation={interpolation!r}: the model's preprocessing has "
                             f"no single Resize step to change; use interpolation=model.")
    old = steps[resizes[0]]
    steps[resizes[0]] = T.Resize(old.size, interpolation=T.InterpolationMode(interpolation),
                                 max_size=old.max_size, antialias=old.antialias)
    return T.Compose(steps)


def resize_interpolation(transform: Any) -> str | None:
    """The interpolation of a torchvision ``Compose``'s first ``Resize`` ("bicubic"...)."""
    from torchvision import transforms as T

    for step in getattr(transform, "transforms", None) or []:
        if type(step) is T.Resize:
            return str(getattr(step.interpolation, "value", step.interpolation))
    return None

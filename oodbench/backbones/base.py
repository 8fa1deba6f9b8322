"""The one interface every vision-language backbone implements (CLIP, SigLIP, the offline mini)."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from PIL import Image

from oodbench.components import Component


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

    @property
    def device(self) -> torch.device:
        return getattr(self, "_device", torch.device("cpu"))

"""Base classes of the generative backends (text LLM, multimodal LLM, diffusion).

Concrete backends import their heavy libraries (transformers, diffusers) inside ``load`` so
that importing this package stays cheap.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from PIL import Image

from oodbench.components import Component


@dataclasses.dataclass
class TextGenerator(Component):
    """A text LLM: chat prompts in, answers out."""

    kind: ClassVar[str] = "text_generator"

    @abstractmethod
    def generate(self, prompts: Sequence[list[dict[str, str]]]) -> list[str]:
        """One answer per chat (a list of {"role", "content"} messages)."""

    def identity(self) -> str:
        """What produced the answers (model id + parameters), for cache keys and provenance."""
        return f"{self.name}:{self.params()}"


@dataclasses.dataclass
class ImageDescriber(Component):
    """A multimodal LLM: (image, prompt) pairs in, answers out."""

    kind: ClassVar[str] = "image_describer"

    @abstractmethod
    def describe(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        """One answer per (image, prompt) pair."""

    def bind(self, env: object) -> None:
        """Give the describer the run (backbone, caches); model-backed describers ignore it."""

    @abstractmethod
    def context(self, images: Sequence[Image.Image], subjects: Sequence[str]) -> list[str]:
        """Per image, what it shows besides ``subjects[i]`` (a short comma-separated answer)."""

    @abstractmethod
    def propose(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[list[str]]:
        """Per (image, prompt), the parsed outlier labels the describer proposes."""

    def identity(self) -> str:
        return f"{self.name}:{self.params()}"


@dataclasses.dataclass
class ImageGenerator(Component):
    """A diffusion model: text-to-image and in-painting."""

    kind: ClassVar[str] = "image_generator"

    @abstractmethod
    def text_to_image(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        """One image per prompt, reproducible from its seed."""

    def identity(self) -> str:
        return f"{self.name}:{self.params()}"

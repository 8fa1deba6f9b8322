"""Base classes of the generative backends (text LLM, multimodal LLM, diffusion).

Concrete backends import their heavy libraries (transformers, diffusers) inside ``load`` so
that importing this package stays cheap.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from oodbench.components import Component

if TYPE_CHECKING:
    import torch

CONTEXT_PROMPT = ("List the things this image shows other than the {subject}, as a short "
                  "comma-separated list of nouns.")


def context_prompt(subject: str) -> str:
    """The :meth:`ImageDescriber.context` request as a chat prompt."""
    return CONTEXT_PROMPT.format(subject=subject)


class HubModel:
    """Mixin of backends whose ``model`` field is a Hugging Face id or a local folder."""

    model: str
    model_marker: ClassVar[str] = "config.json"  # a file every copy of the model holds

    def check_available(self, stand_in: str = "") -> None:
        """Raise a one-line OfflineError, before any work, if ``model`` cannot be loaded here.

        ``stand_in`` names the parameter setting that selects an offline stand-in instead.
        """
        from oodbench.errors import OfflineError
        from oodbench.hub import model_available

        gguf = getattr(self, "gguf_file", "")  # a GGUF repo need not hold a config.json
        if gguf and Path(gguf).expanduser().is_absolute() and Path(gguf).expanduser().exists():
            return
        if model_available(self.model, gguf or self.model_marker):
            return
        name = getattr(self, "name", type(self).__name__)
        hint = f"; or run the offline stand-in explicitly with {stand_in}" if stand_in else ""
        raise OfflineError(
            f"{name} needs the model {self.model!r}: it is not a local folder, not in the "
            f"Hugging Face cache, and the hub cannot be reached. Download it on a connected "
            f"machine (or give a local folder as model=PATH){hint}."
        )


@dataclasses.dataclass
class TextGenerator(Component):
    """A text LLM: chat prompts in, answers out.

    ``seed`` is set by whoever creates the generator for a run (the envisioners pass the run's
    seed, which differs per independent generation); ``uses_seed()`` says whether the answers
    depend on it (sampling, or a remote model that is not deterministic), so that greedy local
    models share one cached answer across seeds.
    """

    kind: ClassVar[str] = "text_generator"
    seed: int = 0

    @abstractmethod
    def generate(self, prompts: Sequence[list[dict[str, str]]]) -> list[str]:
        """One answer per chat (a list of {"role", "content"} messages)."""

    def uses_seed(self) -> bool:
        """Whether the answers depend on ``seed`` (False: the same prompts, the same answers)."""
        return False

    def identity_params(self) -> dict[str, object]:
        """``params()`` without ``seed`` when the answers do not depend on it."""
        params = self.params()
        if not self.uses_seed():
            params.pop("seed", None)
        return params

    def identity(self) -> str:
        """What produced the answers (model id + parameters), for cache keys and provenance."""
        return f"{self.name}:{self.identity_params()}"


@dataclasses.dataclass
class ImageDescriber(Component):
    """A multimodal LLM: (image, prompt) pairs in, answers out.

    Methods ask it two structured requests: :meth:`context` (what an image shows besides its
    subject) and :meth:`propose` (outlier labels for an image and a prompt). A chat model only
    implements :meth:`describe`; the requests' defaults ask it with :data:`CONTEXT_PROMPT` /
    the caller's prompt and parse the answer. A describer that is not a chat model (the
    offline retrieval ``vocabulary`` describer) overrides them.

    ``seed`` as for :class:`TextGenerator`: set from the run's seed by the caller; used only by
    describers that sample (``uses_seed()``).
    """

    kind: ClassVar[str] = "image_describer"
    seed: int = 0

    def uses_seed(self) -> bool:
        """Whether the answers depend on ``seed``."""
        return False

    @abstractmethod
    def describe(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        """One answer per (image, prompt) pair."""

    def bind(self, env: Any) -> None:
        """Give the describer the run (backbone, caches); model-backed describers ignore it."""

    def context(self, images: Sequence[Image.Image], subjects: Sequence[str]) -> list[str]:
        """Per image, what it shows besides ``subjects[i]`` (a short comma-separated answer)."""
        return self.describe(images, [context_prompt(s) for s in subjects])

    def propose(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[list[str]]:
        """Per (image, prompt), the parsed outlier labels the describer proposes."""
        from oodbench.generative.parsing import parse_list_answer

        return [parse_list_answer(a) for a in self.describe(images, prompts)]

    def identity(self) -> str:
        params = self.params()
        if not self.uses_seed():
            params.pop("seed", None)
        return f"{self.name}:{params}"


@dataclasses.dataclass
class ImageGenerator(Component):
    """A diffusion model: text-to-image and in-painting."""

    kind: ClassVar[str] = "image_generator"

    @abstractmethod
    def text_to_image(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        """One image per prompt, reproducible from its seed."""

    def identity(self) -> str:
        return f"{self.name}:{self.params()}"


@dataclasses.dataclass
class ImageClassifier(Component):
    """A frozen, differentiable image classifier, e.g. the guidance model of a synthesizer."""

    kind: ClassVar[str] = "image_classifier"
    num_classes = 0  # set by bind (a plain attribute, not a parameter)

    @abstractmethod
    def identity(self, env: Any) -> str:
        """What the logits depend on (weights, classes), for cache keys; loads nothing."""

    @abstractmethod
    def bind(self, env: Any) -> None:
        """Load the model for the run ``env`` (its device, backbone and suite); sets
        ``num_classes``."""

    @abstractmethod
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] RGB in [0, 1] -> [N, C] logits, differentiable in ``images``."""


class AdoptsBuiltModel:
    """For the transformers backends: wrap a model built in memory instead of loading one."""

    @classmethod
    def from_model(cls, model: Any, processor: Any, device: str = "cpu", **params: Any) -> Any:
        """The backend around ``model`` and its tokenizer/processor (e.g. random-initialised
        real architectures for timing); ``params`` are the component's own parameters."""
        make: Any = cls  # the concrete backend: a dataclass with a ``device`` field
        backend = make(device=device, **params)
        backend._adopt(model, processor, device)
        return backend

    def _adopt(self, model: Any, processor: Any, device: str) -> None:
        raise NotImplementedError

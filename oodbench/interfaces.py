"""The base class of each component kind. A plugin subclasses one and registers the class.

Every main method receives the run's :class:`~oodbench.env.MethodEnv` (device, backbone, suite,
caches, seed) and must take the device from it. Scores are ``numpy`` float arrays with one
entry per image, **higher = more in-distribution**.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from oodbench.components import Component
from oodbench.types import LabelBank, SampleSet, TextHead

if TYPE_CHECKING:
    from oodbench.env import MethodEnv


@dataclasses.dataclass
class Scorer(Component):
    """Turns image features into OOD scores against a text head."""

    kind: ClassVar[str] = "scorer"
    # whether the scorer needs extra labels (a label generator) in the head
    needs_extra_labels: ClassVar[bool] = False

    def prepare(self, env: MethodEnv, head: TextHead) -> TextHead:
        """Optional fitting step on text features (e.g. prototypes); returns the head to score."""
        return head

    @abstractmethod
    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        """[N, D] adapted, normalised image features -> [N] scores, higher = more ID.

        Features and head are on the run's device (``--device``); return a numpy array, or a
        tensor on any device (the runner copies it to the host).
        """


@dataclasses.dataclass
class LabelGenerator(Component):
    """Produces extra class labels (outlier / negative) for the suite's ID classes."""

    kind: ClassVar[str] = "label_generator"

    @abstractmethod
    def generate(self, env: MethodEnv) -> LabelBank:
        """Return a label bank; cache expensive work with ``env.cache`` keyed by all inputs."""


@dataclasses.dataclass
class Synthesizer(Component):
    """Produces images (files) near the ID/OOD boundary, e.g. by diffusion."""

    kind: ClassVar[str] = "synthesizer"

    @abstractmethod
    def synthesize(self, env: MethodEnv, labels: LabelBank | None) -> SampleSet:
        """Write images under ``env.cache`` atomically (resumable) and return them."""


@dataclasses.dataclass
class FineTuner(Component):
    """Adapts the text head and/or image features (projection, tuned label embeddings)."""

    kind: ClassVar[str] = "finetuner"

    @abstractmethod
    def finetune(self, env: MethodEnv, head: TextHead, samples: SampleSet | None) -> TextHead:
        """Return a new head; cache trained weights keyed by everything that produced them."""


def softmax_np(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in float64 along the last dim (scores near 1 need the precision)."""
    return torch.softmax(logits.double(), dim=-1)

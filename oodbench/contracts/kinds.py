"""The base class of each component kind. A plugin subclasses one and registers the class.

Every main method receives the run's :class:`~oodbench.contracts.env.MethodEnv` (device,
backbone, suite, caches, seed) and must take the device from it. Scores are ``numpy`` float
arrays with one entry per image, **higher = more in-distribution**.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from oodbench.contracts.component import Component
from oodbench.contracts.data import FeatureSet, LabelBank, SampleSet, TextHead

if TYPE_CHECKING:
    from oodbench.contracts.env import MethodEnv
    from oodbench.data.sources import ImageList


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

    def score_set(self, env: MethodEnv, images: ImageList, features: FeatureSet,
                  image_features: torch.Tensor, head: TextHead) -> np.ndarray | torch.Tensor:
        """Scores of one evaluated image set; what the runner calls. Default: ``score``.

        A scorer that needs more than the global features overrides it (GL-MCM reads patch
        features from ``images``). Row i of ``image_features`` (adapted, on the run's device)
        is image ``features.paths[i]``, a key of ``images``; unreadable images have no row.
        """
        return self.score(image_features, head)


@dataclasses.dataclass
class LabelGenerator(Component):
    """Produces extra class labels (outlier / negative) for the suite's ID classes."""

    kind: ClassVar[str] = "label_generator"
    # Independent generations the runner makes: N > 1 repeats labels -> synthesize -> finetune
    # -> score with seeds run-seed + 0..N-1 and records the means and standard deviations
    # (oodbench.results). 1 here (a plain class attribute, not a parameter); a stochastic
    # generator (an LLM, an MLLM, random pairings) declares it as a parameter, ``generations:
    # int = 3``, so that ``-p generations=N`` sets it. The runner refuses a value below 1.
    generations = 1

    @abstractmethod
    def generate(self, env: MethodEnv) -> LabelBank:
        """Return a label bank; cache expensive work with ``env.cache`` keyed by all inputs.

        Anything but a :class:`LabelBank` stops the run with one line naming the generator.
        """


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
        """Return a new head (``head.replace(...)``; the head itself if nothing changes); cache
        trained weights keyed by everything that produced them. Anything but a
        :class:`TextHead` stops the run with one line naming the fine-tuner."""


"""Scores from the ID class logits alone: MCM, MSP, MaxLogit, Energy.

All work on cosine similarities between normalised image features and ID class embeddings.
``temperature`` T divides the raw cosine (CLIP's logit scale 100 is T = 0.01).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from oodbench.interfaces import Scorer
from oodbench.types import TextHead


def id_cosines(image_features: torch.Tensor, head: TextHead) -> torch.Tensor:
    return image_features.double() @ head.id_features.double().T


@dataclasses.dataclass
class MCMScorer(Scorer):
    """MCM (Ming et al., NeurIPS'22): max over ID classes of softmax(cos / T)."""

    name = "mcm"
    description = "Maximum concept matching: max softmax of cosine/T over ID classes (T=1)."
    temperature: float = 1.0

    def __post_init__(self) -> None:
        self.check_positive("temperature")

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        probs = torch.softmax(id_cosines(image_features, head) / self.temperature, dim=1)
        return probs.max(dim=1).values.cpu().numpy()


@dataclasses.dataclass
class MSPScorer(MCMScorer):
    """MSP on CLIP logits: MCM's formula at CLIP's own scale (T = 0.01)."""

    name = "msp"
    description = "Maximum softmax probability of the CLIP logits (cosine/0.01)."
    temperature: float = 0.01


@dataclasses.dataclass
class MaxLogitScorer(Scorer):
    """MaxLogit: the largest cosine similarity to an ID class."""

    name = "maxlogit"
    description = "Maximum cosine similarity to an ID class embedding."

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        return id_cosines(image_features, head).max(dim=1).values.cpu().numpy()


@dataclasses.dataclass
class EnergyScorer(Scorer):
    """Energy (Liu et al., NeurIPS'20) on CLIP logits: T·logsumexp(cos / T); T = 0.01 as EOE."""

    name = "energy"
    description = "Negative free energy T*logsumexp(cosine/T) over ID classes (T=0.01)."
    temperature: float = 0.01

    def __post_init__(self) -> None:
        self.check_positive("temperature")

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        logits = id_cosines(image_features, head) / self.temperature
        return (self.temperature * torch.logsumexp(logits, dim=1)).cpu().numpy()

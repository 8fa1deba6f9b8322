"""A scorer: the margin between the two most probable ID classes."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from oodbench import Scorer, TextHead


@dataclasses.dataclass
class Top2MarginScorer(Scorer):
    """Confident images (a large top-2 margin) are more in-distribution."""

    name = "top2-margin"
    description = "Difference of the top-2 ID softmax probabilities (cosine / T)."
    temperature: float = 1.0  # a parameter: --param temperature=0.5

    def __post_init__(self) -> None:
        self.check_positive("temperature")

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        logits = image_features.double() @ head.id_features.double().T / self.temperature
        top2 = torch.softmax(logits, dim=1).topk(2, dim=1).values
        return (top2[:, 0] - top2[:, 1]).cpu().numpy()  # higher = more in-distribution

"""The whole plugin: a scorer class and two hook implementations.

Install it with ``pip install plugins/example`` and run ``oodbench run --method top2-margin``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

import oodbench
from oodbench import ComponentRef, MethodSpec, Scorer, TextHead
from oodbench.hookspecs import Register


@dataclasses.dataclass
class Top2MarginScorer(Scorer):
    """Margin between the two most probable ID classes: confident images are more ID."""

    name = "top2-margin"
    description = "Difference of the top-2 ID softmax probabilities (cosine / T)."
    temperature: float = 1.0

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        logits = image_features.double() @ head.id_features.double().T / self.temperature
        top2 = torch.softmax(logits, dim=1).topk(2, dim=1).values
        return (top2[:, 0] - top2[:, 1]).cpu().numpy()


@oodbench.hookimpl
def register_scorers(register: Register) -> None:
    register(Top2MarginScorer)


@oodbench.hookimpl
def register_methods(register: Register) -> None:
    register(MethodSpec(name="top2-margin", scorer=ComponentRef("top2-margin"),
                        description=Top2MarginScorer.description))

"""EOE's score (Cao et al., ICML'24), also MM-OOD's: S = max_ID p − β · max_outlier p.

p is the softmax of cos/T over the ID names followed by the outlier names; T = 1 on raw
cosines (CLIP's logit scale is not used), β = 0.25. Higher = more in-distribution.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from oodbench.interfaces import Scorer
from oodbench.types import TextHead


def eoe_score(image_features: torch.Tensor, id_features: torch.Tensor,
              outlier_features: torch.Tensor, temperature: float, beta: float) -> np.ndarray:
    feats = image_features.double()
    logits = feats @ torch.cat([id_features, outlier_features]).double().T / temperature
    probs = torch.softmax(logits, dim=1)
    n_id = id_features.shape[0]
    id_max = probs[:, :n_id].max(dim=1).values
    if outlier_features.shape[0] == 0:
        return id_max.cpu().numpy()
    return (id_max - beta * probs[:, n_id:].max(dim=1).values).cpu().numpy()


@dataclasses.dataclass
class EOEScorer(Scorer):
    name = "eoe"
    description = "EOE: max ID softmax − β·max outlier softmax over ID + envisioned labels."
    needs_extra_labels = True
    temperature: float = 1.0
    beta: float = 0.25

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        assert head.extra_features is not None
        return eoe_score(image_features, head.id_features, head.extra_features,
                         self.temperature, self.beta)

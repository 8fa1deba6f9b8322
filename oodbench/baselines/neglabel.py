"""NegLabel score (Jiang et al., ICLR'24): the softmax mass on ID labels vs ID + negatives.

S = Σ_ID exp(cos/τ) / (Σ_ID exp(cos/τ) + Σ_neg exp(cos/τ)), τ = 0.01. With grouping, the
negatives are shuffled by a fixed permutation, the last M mod ngroup dropped, split into
``ngroup`` groups, S computed per group against all ID labels, and averaged over groups.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch

from oodbench.interfaces import Scorer
from oodbench.types import TextHead

if TYPE_CHECKING:
    from oodbench.env import MethodEnv


def neglabel_score(image_features: torch.Tensor, id_features: torch.Tensor,
                   negative_features: torch.Tensor, temperature: float,
                   groups: list[torch.Tensor] | None = None) -> np.ndarray:
    """Grouped NegLabel score in log space (exact even when exp(cos/τ) overflows)."""
    feats = image_features.double()
    lse_id = torch.logsumexp(feats @ id_features.double().T / temperature, dim=1)
    neg_logits = feats @ negative_features.double().T / temperature
    if not groups:
        groups = [torch.arange(neg_logits.shape[1])]
    per_group = []
    for idx in groups:
        lse_neg = torch.logsumexp(neg_logits[:, idx], dim=1)
        per_group.append(torch.exp(lse_id - torch.logaddexp(lse_id, lse_neg)))
    return torch.stack(per_group).mean(dim=0).numpy()


def make_groups(count: int, ngroup: int, seed: int) -> list[torch.Tensor]:
    """NegLabel's grouping: fixed permutation, drop count mod ngroup, split into ngroup parts.

    ``ngroup`` is clamped to ``count`` so that small label sets keep every negative.
    """
    ngroup = max(1, min(ngroup, count))
    usable = count - count % ngroup
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(count, generator=generator)[:usable]
    return list(perm.reshape(ngroup, usable // ngroup))


@dataclasses.dataclass
class NegLabelScorer(Scorer):
    name = "neglabel"
    description = "NegLabel: ID softmax mass against ID + mined negative labels, grouped."
    needs_extra_labels = True
    temperature: float = 0.01
    ngroup: int = 100
    group_seed: int = 0
    # NegLabel embeds the ID labels with its own prompt; "" keeps the suite's prompts
    id_template: str = "the nice {}"

    def prepare(self, env: MethodEnv, head: TextHead) -> TextHead:
        if self.id_template:
            head = head.replace(id_features=env.id_text_features([self.id_template]))
        assert head.extra_features is not None
        self._groups = make_groups(head.extra_features.shape[0], self.ngroup, self.group_seed)
        return head

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        assert head.extra_features is not None
        groups = getattr(self, "_groups", None) or make_groups(
            head.extra_features.shape[0], self.ngroup, self.group_seed)
        return neglabel_score(image_features, head.id_features, head.extra_features,
                              self.temperature, groups)

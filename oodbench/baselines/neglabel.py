"""NegLabel score (Jiang et al., ICLR'24): the softmax mass on ID labels vs ID + negatives.

S = Σ_ID exp(cos/τ) / (Σ_ID exp(cos/τ) + Σ_neg exp(cos/τ)), τ = 0.01. With grouping, the
negatives are shuffled by a fixed permutation, the last M mod ngroup dropped, split into
``ngroup`` groups, S computed per group against all ID labels, and averaged over groups.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING

import numpy as np
import torch

from oodbench.interfaces import Scorer
from oodbench.types import TextHead

if TYPE_CHECKING:
    from oodbench.env import MethodEnv


def neglabel_score(image_features: torch.Tensor, id_features: torch.Tensor,
                   negative_features: torch.Tensor, temperature: float,
                   groups: list[torch.Tensor] | None = None, chunk: int = 2048) -> np.ndarray:
    """Grouped NegLabel score in log space (exact even when exp(cos/τ) overflows).

    Images go in chunks of ``chunk`` rows and the negatives are reordered once so that each
    group is a contiguous block: memory stays ~chunk x negatives (a whole ImageNet set against
    ~21k negatives took 8+ GB in float64 and a column copy per group), with the same values.
    """
    if not groups:
        groups = [torch.arange(negative_features.shape[0])]
    bounds = np.cumsum([0] + [len(g) for g in groups]).tolist()
    order = torch.cat(groups).to(negative_features.device)
    negatives = negative_features.double()[order].T
    ids = id_features.double().T
    scores = []
    for start in range(0, image_features.shape[0], chunk):
        feats = image_features[start : start + chunk].double()
        lse_id = torch.logsumexp(feats @ ids / temperature, dim=1)
        neg_logits = feats @ negatives / temperature
        per_group = [torch.exp(lse_id - torch.logaddexp(
            lse_id, torch.logsumexp(neg_logits[:, lo:hi], dim=1)))
            for lo, hi in itertools.pairwise(bounds)]
        scores.append(torch.stack(per_group).mean(dim=0))
    if not scores:
        return np.zeros(0)
    return torch.cat(scores).cpu().numpy()


def make_groups(count: int, ngroup: int, seed: int) -> list[torch.Tensor]:
    """NegLabel's grouping: drop the last count mod ngroup negatives, permute the rest with a
    fixed seed, split into ngroup parts (the official ``grouping``).

    The official permutation comes from the CUDA generator, ours from the CPU one (the same on
    every device), so group membership differs from the official run's. ``ngroup`` is clamped
    to ``count`` so that small label sets keep every negative.
    """
    ngroup = max(1, min(ngroup, count))
    usable = count - count % ngroup
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(usable, generator=generator)
    return list(perm.reshape(ngroup, usable // ngroup))


class GroupedNegatives(Scorer):
    """NegLabel's grouped score over the head's extra (negative) labels, for scorers with the
    fields ``temperature``, ``ngroup`` and ``group_seed``; :meth:`id_templates_used` names the
    ID prompts (None: the suite's)."""

    temperature: float
    ngroup: int
    group_seed: int

    def id_templates_used(self) -> list[str] | None:
        raise NotImplementedError

    def prepare(self, env: MethodEnv, head: TextHead) -> TextHead:
        templates = self.id_templates_used()
        if templates:
            head = head.replace(id_features=env.id_text_features(templates))
        assert head.extra_features is not None
        self._groups = make_groups(head.extra_features.shape[0], self.ngroup, self.group_seed)
        return head

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        assert head.extra_features is not None
        groups = getattr(self, "_groups", None) or make_groups(
            head.extra_features.shape[0], self.ngroup, self.group_seed)
        return neglabel_score(image_features, head.id_features, head.extra_features,
                              self.temperature, groups)


@dataclasses.dataclass
class NegLabelScorer(GroupedNegatives):
    name = "neglabel"
    description = "NegLabel: ID softmax mass against ID + mined negative labels, grouped."
    needs_extra_labels = True
    temperature: float = 0.01
    ngroup: int = 100
    group_seed: int = 0
    # NegLabel embeds the ID labels with its own prompt; "" keeps the suite's prompts
    id_template: str = "the nice {}"

    def __post_init__(self) -> None:
        self.check_positive("temperature", "ngroup")

    def id_templates_used(self) -> list[str] | None:
        return [self.id_template] if self.id_template else None

"""The two fine-tuning stages of SynOOD, as plain functions on cached features.

Stage A (image side): f̂ = normalize(f + ReLU(LN(W f))) on frozen image features, trained with
cross-entropy over the ID prompts + the mined negative labels (τ = 0.01); Adam 1e-3, weight
decay 1e-5, cosine to 1e-5 over 3 epochs, batch 128.
Stage B (label side): each mined label's text feature becomes a free parameter, initialised
from the text encoder, trained with cross-entropy over the mined labels only on the synthetic
images (τ = 0.01); SGD 0.02, momentum 0.9, weight decay 1e-5, cosine over 5 epochs, batch 128.
Parameters stay fp32 whatever the backbone's precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


class ResidualProjection(nn.Module):
    """f̂ = normalize(f + ReLU(LayerNorm(W f))): ~264k parameters at width 512."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        feats = feats.float()
        return nn.functional.normalize(feats + torch.relu(self.norm(self.linear(feats))), dim=-1)


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)  # mean loss per epoch


def _batches(n: int, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return list(order.split(batch))


def train_projection(features: torch.Tensor, targets: torch.Tensor, text: torch.Tensor,
                     epochs: int = 3, batch: int = 128, lr: float = 1e-3,
                     weight_decay: float = 1e-5, min_lr: float = 1e-5, temperature: float = 0.01,
                     seed: int = 0) -> tuple[ResidualProjection, TrainLog]:
    """Stage A. ``targets`` index rows of ``text`` (ID prompts first, then mined labels)."""
    torch.manual_seed(seed)
    model = ResidualProjection(features.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, epochs),
                                                          eta_min=min_lr)
    text = nn.functional.normalize(text.float(), dim=-1)
    log = TrainLog()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        total = 0.0
        for idx in _batches(len(features), batch, generator):
            logits = model(features[idx]) @ text.T / temperature
            loss = nn.functional.cross_entropy(logits, targets[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        schedule.step()  # per epoch, as the reference code
        log.losses.append(total / max(1, len(features)))
    return model.eval(), log


def train_label_features(features: torch.Tensor, targets: torch.Tensor, init: torch.Tensor,
                         epochs: int = 5, batch: int = 128, lr: float = 0.02,
                         momentum: float = 0.9, weight_decay: float = 1e-5,
                         temperature: float = 0.01, seed: int = 0
                         ) -> tuple[torch.Tensor, TrainLog]:
    """Stage B. ``targets`` index rows of ``init`` (the mined labels' text features)."""
    torch.manual_seed(seed)
    labels = nn.Parameter(init.detach().float().clone())
    optimiser = torch.optim.SGD([labels], lr=lr, momentum=momentum, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, epochs))
    feats = nn.functional.normalize(features.float(), dim=-1)
    log = TrainLog()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        total = 0.0
        for idx in _batches(len(feats), batch, generator):
            logits = feats[idx] @ nn.functional.normalize(labels, dim=-1).T / temperature
            loss = nn.functional.cross_entropy(logits, targets[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        schedule.step()
        log.losses.append(total / max(1, len(feats)))
    return nn.functional.normalize(labels.detach(), dim=-1), log

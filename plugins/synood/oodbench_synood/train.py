"""The two fine-tuning stages of SynOOD, as plain functions on cached features.

Stage A (image side): f̂ = normalize(f + ReLU(LN(W f))) on frozen image features, trained with
cross-entropy over the ID prompts + the mined negative labels (τ = 0.01); Adam 1e-3, weight
decay 1e-5, cosine to 1e-5 over 3 epochs, batch 128.
Stage B (label side): each mined label's text feature becomes a free parameter, initialised
from the text encoder, trained with cross-entropy over the mined labels only on the synthetic
images (τ = 0.01); SGD 0.02, momentum 0.9, weight decay 1e-5, cosine over 5 epochs, batch 128.
Parameters stay fp32 whatever the backbone's precision.

Feature scale. The reference feeds CLIP's *raw* (unnormalised) embeddings to both stages, while
oodbench caches L2-normalised ones. The scale is not cosmetic: the residual branch ends in a
LayerNorm, so its output has a fixed size (≈ sqrt(D/2)) whatever its input; on unit vectors it
swamps f (cos(f̂, f) ≈ 0.1 at initialisation, the zero-shot geometry is lost), and a free label
vector of norm 1 takes steps ρ² times larger in angle than one of norm ρ. Both stages therefore
rescale the unit features to ``scale`` = ρ before training (ρ = sqrt(D) by default: one unit
per coordinate, the LayerNorm branch's own scale; raw CLIP embeddings are of that order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


class ResidualProjection(nn.Module):
    """f̂ = normalize(f + ReLU(LayerNorm(W f))) with f = ρ·(unit feature): ~264k parameters at
    width 512 (ρ is a buffer, saved with the weights)."""

    def __init__(self, width: int, scale: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        feats = nn.functional.normalize(feats.float(), dim=-1) * self.scale
        return nn.functional.normalize(feats + torch.relu(self.norm(self.linear(feats))), dim=-1)


def default_scale(width: int, rms: float = 1.0) -> float:
    """ρ = rms · sqrt(D): the norm of a D-vector with ``rms`` per coordinate."""
    return rms * width**0.5


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)  # mean loss per epoch


Progress = Callable[[int, int], None]  # (batches done, batches in all epochs)


def _batches(n: int, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return list(order.split(batch))


def batch_count(n: int, batch: int, epochs: int) -> int:
    """Optimiser steps over all epochs (the length of a training progress bar)."""
    return epochs * -(-n // batch)


def train_projection(features: torch.Tensor, targets: torch.Tensor, text: torch.Tensor,
                     epochs: int = 3, batch: int = 128, lr: float = 1e-3,
                     weight_decay: float = 1e-5, min_lr: float = 1e-5, temperature: float = 0.01,
                     seed: int = 0, scale: float | None = None, progress: Progress | None = None
                     ) -> tuple[ResidualProjection, TrainLog]:
    """Stage A. ``targets`` index rows of ``text`` (ID prompts first, then mined labels);
    ``scale`` = ρ (None: sqrt(D)); ``progress`` is called after every batch."""
    torch.manual_seed(seed)
    width = features.shape[1]
    model = ResidualProjection(width, default_scale(width) if scale is None else scale)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, epochs),
                                                          eta_min=min_lr)
    text = nn.functional.normalize(text.float(), dim=-1)
    log = TrainLog()
    generator = torch.Generator().manual_seed(seed)
    done, steps = 0, batch_count(len(features), batch, epochs)
    for _ in range(epochs):
        total = 0.0
        for idx in _batches(len(features), batch, generator):
            logits = model(features[idx]) @ text.T / temperature
            loss = nn.functional.cross_entropy(logits, targets[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            done += 1
            if progress:
                progress(done, steps)
        schedule.step()  # per epoch, as the reference code
        log.losses.append(total / max(1, len(features)))
    return model.eval(), log


def train_label_features(features: torch.Tensor, targets: torch.Tensor, init: torch.Tensor,
                         epochs: int = 5, batch: int = 128, lr: float = 0.02,
                         momentum: float = 0.9, weight_decay: float = 1e-5,
                         temperature: float = 0.01, seed: int = 0, scale: float | None = None,
                         progress: Progress | None = None) -> tuple[torch.Tensor, TrainLog]:
    """Stage B. ``targets`` index rows of ``init`` (the mined labels' text features), which
    start at norm ``scale`` = ρ (None: sqrt(D)); the result is L2-normalised. ``progress`` is
    called after every batch."""
    torch.manual_seed(seed)
    rho = default_scale(init.shape[1]) if scale is None else scale
    labels = nn.Parameter(nn.functional.normalize(init.detach().float(), dim=-1) * rho)
    optimiser = torch.optim.SGD([labels], lr=lr, momentum=momentum, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, epochs))
    feats = nn.functional.normalize(features.float(), dim=-1)
    log = TrainLog()
    generator = torch.Generator().manual_seed(seed)
    done, steps = 0, batch_count(len(features), batch, epochs)
    for _ in range(epochs):
        total = 0.0
        for idx in _batches(len(feats), batch, generator):
            logits = feats[idx] @ nn.functional.normalize(labels, dim=-1).T / temperature
            loss = nn.functional.cross_entropy(logits, targets[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            done += 1
            if progress:
                progress(done, steps)
        schedule.step()
        log.losses.append(total / max(1, len(feats)))
    return nn.functional.normalize(labels.detach(), dim=-1), log

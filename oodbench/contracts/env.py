"""What every component receives during a run: device, backbone, suite, caches, seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oodbench.backbones.base import Backbone
from oodbench.cache import ArtifactCache, content_key
from oodbench.contracts.data import FeatureSet, LabelBank, RunContext
from oodbench.data.sources import ImageList, resolve_source
from oodbench.data.suite import Suite
from oodbench.errors import MissingDataError
from oodbench.features import FeatureStore, Progress


def _quiet(_: str) -> None:
    return None


@dataclass
class MethodEnv:
    ctx: RunContext
    backbone: Backbone
    backbone_name: str
    suite: Suite
    store: FeatureStore
    registry: Any  # oodbench.plugins.Registry (Any: avoids an import cycle)
    log: Callable[[str], None] = _quiet
    progress: Callable[[str, int], Progress] | None = None
    # filled by the runner: what produced the run's artefacts, for the result record
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def cache(self) -> ArtifactCache:
        return self.store.cache

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    def reuse(self, stage: str) -> bool:
        """Whether cached artefacts of ``stage`` may be reused (False after ``--rerun-from``)."""
        return stage not in self.ctx.refresh

    def rng(self, *salt: Any) -> np.random.Generator:
        """A generator seeded by the run seed and ``salt`` (same inputs, same draws)."""
        return np.random.default_rng(int(content_key(self.ctx.seed, *salt)[:12], 16))

    def key(self, *parts: Any) -> str:
        """Cache key of an artefact that depends on the backbone and the suite's ID side."""
        return content_key(self.backbone.fingerprint(), list(self.suite.classes), *parts)

    # -- text side ----------------------------------------------------------------------------
    def id_text_features(self, templates: list[str] | None = None) -> torch.Tensor:
        """[C, D] ID class embeddings, averaged over the suite's prompt templates by default."""
        return self.store.label_embeddings(
            self.backbone, list(self.suite.classes), templates or list(self.suite.prompts),
            self.ctx,
        )

    def text_features(self, texts: list[str]) -> torch.Tensor:
        return self.store.texts(self.backbone, texts, self.ctx)

    def label_features(self, bank: LabelBank) -> torch.Tensor:
        """[M, D] embeddings of a label bank, each label with its group's templates."""
        if not bank.labels:
            return torch.zeros(0, self.backbone.embed_dim)
        out = torch.zeros(len(bank.labels), self.backbone.embed_dim)
        by_templates: dict[tuple[str, ...], list[int]] = {}
        for i in range(len(bank.labels)):
            by_templates.setdefault(tuple(bank.prompts_for(i)), []).append(i)
        for templates, idx in by_templates.items():
            feats = self.store.label_embeddings(
                self.backbone, [bank.labels[i] for i in idx], list(templates), self.ctx
            )
            out[idx] = feats
        return out

    # -- image side ---------------------------------------------------------------------------
    def id_train_images(self) -> ImageList:
        """The suite's ID *train* images: what methods may look at (never evaluation images)."""
        if self.suite.id_train is None:
            raise MissingDataError(
                f"Suite {self.suite.name!r} defines no ID train split (id.train), which this "
                f"method needs; add one to the suite file."
            )
        return resolve_source(self.suite.id_train, f"{self.suite.id_name}-train",
                              self.suite.classes)

    def encode(self, images: ImageList, phase: str | None = None) -> FeatureSet:
        update = self.progress(phase or f"encode {images.name}", len(images)) \
            if self.progress else None
        return self.store.images(self.backbone, images, self.ctx, update)

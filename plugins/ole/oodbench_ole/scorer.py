"""The OLE score: the ID share of a softmax over ID classes and outlier prototypes.

With logits l = s * cos(z, w) over W = ID ∪ O (s = 50), p = softmax(l) and
S = Σ_{i in ID} p_i * q_i, where the paper's CLIPN backbone gives q_i = σ(l_i - l_i^no) from
its second ("no") text encoder. Plain CLIP has no "no" encoder, so q ≡ 1 and
S = Σ_{i in ID} p_i: we call that **OLE (CLIP)**. Its numbers must never be compared with the
paper's CLIPN-based OLE numbers.

The scorer ``ole-clipn`` (method ``ole-clipn``) needs a CLIPN backbone (``clipn-b16``,
``mini-clipn``): it embeds the ID classes with both text towers, the same templates for both
(as OLE's code encodes prompt.txt twice), puts the "no" ones in ``head.meta["id_no_features"]``
and scores the published form **OLE (CLIPN)**: S = Σ_{i in ID} p_i * σ(l_i - l_i^no). Outlier
prototypes have no "no" embedding.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from oodbench.baselines.clipn import NO_FEATURES_KEY, id_no_features, require_no_tower
from oodbench.interfaces import Scorer
from oodbench.types import TextHead
from oodbench_ole.templates import resolve_templates

if TYPE_CHECKING:
    from oodbench.env import MethodEnv

CLIP_VARIANT, CLIPN_VARIANT = "OLE (CLIP)", "OLE (CLIPN)"


def ole_score(image_features: torch.Tensor, id_features: torch.Tensor,
              outlier_features: torch.Tensor, scale: float,
              id_no_features: torch.Tensor | None = None) -> np.ndarray:
    """[N] scores, computed in log space in float64 (exact where exp(s*cos) would overflow).

    Every text row is re-normalised, as the official classifier does.
    """
    z = image_features.double()
    id_logits = scale * z @ F.normalize(id_features.double(), dim=-1).T
    out_logits = scale * z @ F.normalize(outlier_features.double(), dim=-1).T
    log_p = id_logits - torch.logsumexp(torch.cat([id_logits, out_logits], dim=1),
                                        dim=1, keepdim=True)
    if id_no_features is not None:
        no_logits = scale * z @ F.normalize(id_no_features.double(), dim=-1).T
        log_p = log_p + F.logsigmoid(id_logits - no_logits)  # log q_i
    return torch.exp(torch.logsumexp(log_p, dim=1)).cpu().numpy()


@dataclasses.dataclass
class OLEScorer(Scorer):
    """OLE (CLIP): the ID probability mass of the softmax over ID ∪ outlier prototypes."""

    name = "ole"
    description = ("OLE (CLIP): ID share of softmax(50*cos) over ID classes + outlier "
                   "prototypes (the paper's CLIPN 'no' factor is unavailable).")
    needs_extra_labels = True
    scale: float = 50.0
    # "" keeps the head's ID embeddings (method `ole`: set by ole-prototypes); else a template
    # set name (auto, ole128, clip64, with64, suite) or '|'-separated templates to re-embed them
    id_templates: str = ""

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError("scale must be positive")

    def prepare(self, env: MethodEnv, head: TextHead) -> TextHead:
        if self.id_templates:
            templates = resolve_templates(self.id_templates, env.suite.prompts, env.backbone_name)
            head = head.replace(id_features=env.id_text_features(templates))
        return self._noted(env, head)

    def _noted(self, env: MethodEnv, head: TextHead) -> TextHead:
        """Record the variant (OLE (CLIPN) when the head has "no" embeddings) in the notes."""
        outliers = 0 if head.extra_features is None else int(head.extra_features.shape[0])
        variant = CLIPN_VARIANT if head.meta.get(NO_FEATURES_KEY) is not None else CLIP_VARIANT
        env.notes[self.name] = {"variant": variant, "outliers": outliers, "scale": self.scale}
        env.log(f"{self.name}: {variant}, {outliers} outlier vectors, scale {self.scale:g}")
        return head

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        assert head.extra_features is not None
        return ole_score(image_features, head.id_features, head.extra_features, self.scale,
                         head.meta.get(NO_FEATURES_KEY))


@dataclasses.dataclass
class OLECLIPNScorer(OLEScorer):
    """OLE (CLIPN), the paper's form: each ID class's softmax share weighted by CLIPN's q_i."""

    name = "ole-clipn"
    description = ("OLE (CLIPN): Σ_ID softmax(50*cos)_i * q_i over ID classes + outlier "
                   "prototypes, q_i from the CLIPN backbone's 'no' tower.")
    # the ID classes are embedded by both towers with these templates (a set name or
    # '|'-separated templates); "auto" is what ole-prototypes uses by default
    id_templates: str = "auto"

    def preflight(self, env: MethodEnv) -> None:
        require_no_tower(env, f"scorer {self.name!r} (OLE (CLIPN))")

    def prepare(self, env: MethodEnv, head: TextHead) -> TextHead:
        self.preflight(env)
        templates = resolve_templates(self.id_templates or "auto", env.suite.prompts,
                                      env.backbone_name)
        head = head.replace(id_features=env.id_text_features(templates),
                            meta={**head.meta, NO_FEATURES_KEY: id_no_features(env, templates)})
        return self._noted(env, head)

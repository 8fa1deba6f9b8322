"""CSP's score (Chen et al., NeurIPS 2024): NegLabel's grouped score with CSP's ID prompts.

The formula is NegLabel's (:func:`~oodbench.baselines.neglabel.neglabel_score`: τ = 0.01, 100
groups, seed 0); the ID labels are embedded with the templates of the noun candidates: CSP's
8-template ensemble (:data:`oodbench.labels.csp.NOUN_TEMPLATES`, the paper setting, filled in on
real suites) or, on the offline suites, the stand-in ``"the nice {}"`` of ``csp-mining``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from oodbench.baselines.neglabel import make_groups, neglabel_score
from oodbench.interfaces import Scorer
from oodbench.labels.csp import NOUN_TEMPLATES
from oodbench.types import TextHead

if TYPE_CHECKING:
    from oodbench.env import MethodEnv


@dataclasses.dataclass
class CSPScorer(Scorer):
    name = "csp"
    description = "CSP: NegLabel's grouped score, ID labels embedded with CSP's templates."
    paper_settings: ClassVar[dict[str, Any]] = {"id_templates": list(NOUN_TEMPLATES)}
    needs_extra_labels = True
    temperature: float = 0.01
    ngroup: int = 100
    group_seed: int = 0
    # the offline stand-in; must equal csp-mining's noun_templates ([] = the suite's prompts)
    id_templates: list[str] = dataclasses.field(default_factory=lambda: ["the nice {}"])

    def __post_init__(self) -> None:
        self.check_positive("temperature", "ngroup")

    def prepare(self, env: MethodEnv, head: TextHead) -> TextHead:
        if self.id_templates:  # [] keeps the suite's prompts
            head = head.replace(id_features=env.id_text_features(list(self.id_templates)))
        assert head.extra_features is not None
        self._groups = make_groups(head.extra_features.shape[0], self.ngroup, self.group_seed)
        return head

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        assert head.extra_features is not None
        groups = getattr(self, "_groups", None) or make_groups(
            head.extra_features.shape[0], self.ngroup, self.group_seed)
        return neglabel_score(image_features, head.id_features, head.extra_features,
                              self.temperature, groups)

"""EOE's score (Cao et al., ICML'24), also MM-OOD's: S = max_ID p − β · max_outlier p.

p is the softmax of cos/T over the ID names followed by the outlier names; T = 1 on raw
cosines (CLIP's logit scale is not used), β = 0.25. Higher = more in-distribution.

EOE's code embeds the ID names and the envisioned names with one template, f"a photo of a {c}"
(utils/detection_util.py), or both with its prompt ensemble (``--ensemble``). The scorer does
the same: ``template`` re-embeds both sides of the head with the same template(s).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from oodbench.env import MethodEnv
from oodbench.interfaces import Scorer
from oodbench.types import LabelBank, TextHead

EOE_TEMPLATE = "a photo of a {}"  # EOE's exact string: no period


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


def resolve_templates(value: str, suite_prompts: tuple[str, ...] | list[str]) -> list[str]:
    """``suite`` = the suite's prompt ensemble; else one template or '|'-separated ones."""
    if value == "suite":
        return list(suite_prompts)
    templates = [t for t in value.split("|") if t]
    for t in templates:
        if "{}" not in t:
            raise ValueError(f"template {t!r} has no '{{}}' placeholder for the class name")
    return templates


@dataclasses.dataclass
class EOEScorer(Scorer):
    name = "eoe"
    description = "EOE: max ID softmax − β·max outlier softmax over ID + envisioned labels."
    needs_extra_labels = True
    temperature: float = 1.0
    beta: float = 0.25
    # the text template(s) of BOTH the ID names and the outlier names: EOE's "a photo of a {}"
    # (default), '|'-separated templates (an ensemble, e.g. EOE's --ensemble five), "suite" =
    # the suite's prompts for both, or "" = the head as the runner built it (ID names with the
    # suite's prompts, outlier names with the label bank's templates: two different prompts)
    template: str = EOE_TEMPLATE

    def __post_init__(self) -> None:
        if self.template:
            resolve_templates(self.template, ())  # checks the placeholders

    def prepare(self, env: MethodEnv, head: TextHead) -> TextHead:
        if not self.template:
            env.notes[self.name] = {"templates": "head"}
            return head
        templates = resolve_templates(self.template, env.suite.prompts)
        outliers = LabelBank(labels=list(head.extra_labels), generator="", templates=templates)
        env.notes[self.name] = {"templates": templates}
        return head.replace(id_features=env.id_text_features(templates),
                            extra_features=env.label_features(outliers))

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        assert head.extra_features is not None
        return eoe_score(image_features, head.id_features, head.extra_features,
                         self.temperature, self.beta)

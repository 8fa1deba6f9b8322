"""CSP's score (Chen et al., NeurIPS 2024): NegLabel's grouped score with CSP's ID prompts.

The formula is NegLabel's (:func:`~oodbench.baselines.neglabel.neglabel_score`: τ = 0.01, 100
groups, seed 0); the ID labels are embedded with the templates of the noun candidates: CSP's
8-template ensemble (:data:`oodbench.labels.csp.NOUN_TEMPLATES`, the paper setting).
"""

from __future__ import annotations

import dataclasses

from oodbench.baselines.neglabel import GroupedNegatives
from oodbench.labels.csp import NOUN_TEMPLATES


@dataclasses.dataclass
class CSPScorer(GroupedNegatives):
    name = "csp"
    description = "CSP: NegLabel's grouped score, ID labels embedded with CSP's templates."
    needs_extra_labels = True
    temperature: float = 0.01
    ngroup: int = 100
    group_seed: int = 0
    # must equal csp-mining's noun_templates ([] = the suite's prompts)
    id_templates: list[str] = dataclasses.field(default_factory=lambda: list(NOUN_TEMPLATES))

    def __post_init__(self) -> None:
        self.check_positive("temperature", "ngroup")

    def id_templates_used(self) -> list[str] | None:
        return list(self.id_templates) or None  # [] keeps the suite's prompts

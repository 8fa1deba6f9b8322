"""The component kinds (scorer, label generator, synthesizer, fine-tuner); defined in
:mod:`oodbench.contracts.kinds`.

Kept so that ``from oodbench.interfaces import Scorer`` keeps working; new code imports from
:mod:`oodbench.contracts` (or ``oodbench``).
"""

from oodbench.contracts.kinds import FineTuner, LabelGenerator, Scorer, Synthesizer

__all__ = ["FineTuner", "LabelGenerator", "Scorer", "Synthesizer"]

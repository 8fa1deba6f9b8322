"""The data types that flow between components; defined in :mod:`oodbench.contracts.data`.

Kept so that ``from oodbench.types import RunContext`` keeps working; new code imports from
:mod:`oodbench.contracts` (or ``oodbench``).
"""

from oodbench.contracts.data import FeatureSet, LabelBank, RunContext, SampleSet, TextHead

__all__ = ["FeatureSet", "LabelBank", "RunContext", "SampleSet", "TextHead"]

"""Components and their parameters; defined in :mod:`oodbench.contracts.component` and
:mod:`oodbench.contracts.params`.

Kept so that ``from oodbench.components import Component`` keeps working; new code imports from
:mod:`oodbench.contracts` (or ``oodbench``).
"""

from oodbench.contracts.component import Component
from oodbench.contracts.params import coerce, parse_param_args

__all__ = ["Component", "coerce", "parse_param_args"]

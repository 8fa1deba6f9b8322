"""What every component receives during a run; defined in :mod:`oodbench.contracts.env`.

Kept so that ``from oodbench.env import MethodEnv`` keeps working; new code imports from
:mod:`oodbench.contracts` (or ``oodbench``).
"""

from oodbench.contracts.env import MethodEnv

__all__ = ["MethodEnv"]

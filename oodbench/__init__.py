"""oodbench: a plugin-based benchmark for OOD detection with vision-language models.

Everything a plugin may import is listed in ``__all__`` and documented in
:mod:`oodbench.contracts` (component kinds, ``LabelBank``, ``TextHead``, ``MethodEnv``, the YAML
method form); the hooks that register components are in :mod:`oodbench.hookspecs`.

Importing this package is cheap: no model library (open_clip, transformers, diffusers) and no
torch is imported until a component needs it.
"""

from __future__ import annotations

import pluggy

from oodbench import contracts

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("oodbench")

# everything a plugin may import from the top level (lazily: no torch at `import oodbench`)
__all__ = ["__version__", "hookimpl", "contracts", *contracts.__all__]


def __getattr__(name: str) -> object:
    """Lazy access to the public classes of :mod:`oodbench.contracts`."""
    if name in contracts.__all__:
        return getattr(contracts, name)
    raise AttributeError(f"module 'oodbench' has no attribute {name!r}")

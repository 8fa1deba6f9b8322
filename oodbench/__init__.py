"""oodbench: a plugin-based benchmark for OOD detection with vision-language models.

Importing this package is cheap: no model library (open_clip, transformers, diffusers) is
imported until a component needs it.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("oodbench")

_LAZY = {
    "Scorer": "oodbench.interfaces",
    "LabelGenerator": "oodbench.interfaces",
    "Synthesizer": "oodbench.interfaces",
    "FineTuner": "oodbench.interfaces",
    "Backbone": "oodbench.backbones.base",
    "MethodSpec": "oodbench.method",
    "ComponentRef": "oodbench.method",
    "LabelBank": "oodbench.types",
    "TextHead": "oodbench.types",
    "SampleSet": "oodbench.types",
    "OODBenchError": "oodbench.errors",
    "MethodEnv": "oodbench.env",
    "RunContext": "oodbench.types",
}

# everything a plugin may import from the top level (lazily: no torch at `import oodbench`)
__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> object:
    """Lazy access to the public classes, so `import oodbench` does not import torch."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'oodbench' has no attribute {name!r}")

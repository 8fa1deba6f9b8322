"""A kit for plugin authors: a toy backbone, a tiny suite, registry fixtures and
:func:`check_plugin`, which validates everything a plugin registers.

Installed with oodbench as a pytest plugin (entry point ``pytest11``), so a plugin's tests get
the fixtures ``oodbench_isolated``, ``oodbench_registry``, ``toy_suite`` and ``toy_env`` without a
conftest; ``-p no:oodbench`` turns them off. In a test::

    from oodbench.testing import check_plugin
    import my_plugin.plugin

    def test_plugin_passes_the_checks():
        check_plugin(my_plugin.plugin)

Importing this package is cheap; torch loads when a name below is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the names below are, for type checkers (imported lazily at run time)
    from oodbench.testing.check import PluginCheckError, Problem, check_plugin, plugin_problems
    from oodbench.testing.probes import toy_env
    from oodbench.testing.toy import (
        COLOURS,
        ToyBackbonePlugin,
        ToyColourBackbone,
        write_colour_images,
        write_toy_suite,
    )

_LAZY = {
    "check_plugin": "oodbench.testing.check",
    "plugin_problems": "oodbench.testing.check",
    "PluginCheckError": "oodbench.testing.check",
    "Problem": "oodbench.testing.check",
    "toy_env": "oodbench.testing.probes",
    "ToyColourBackbone": "oodbench.testing.toy",
    "ToyBackbonePlugin": "oodbench.testing.toy",
    "write_colour_images": "oodbench.testing.toy",
    "write_toy_suite": "oodbench.testing.toy",
    "COLOURS": "oodbench.testing.toy",
}

__all__ = [
    "COLOURS",
    "PluginCheckError",
    "Problem",
    "ToyBackbonePlugin",
    "ToyColourBackbone",
    "check_plugin",
    "plugin_problems",
    "toy_env",
    "write_colour_images",
    "write_toy_suite",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'oodbench.testing' has no attribute {name!r}")

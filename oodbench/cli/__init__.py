"""The ``oodbench`` command line: thin over the library; heavy imports happen inside commands.

One module per responsibility: ``common`` (consoles, one-line errors, the registry, progress,
tables and JSON), ``run``, ``listings`` (plugins, methods, backbones, components), ``suites``,
``data``, ``labels``, ``schema``; ``app`` composes them and holds the global options.
"""

from __future__ import annotations

from oodbench.cli.app import app, main
from oodbench.cli.common import console, err_console

__all__ = ["app", "console", "err_console", "main"]

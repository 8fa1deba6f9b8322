"""Errors that reach users: each message names the problem and the fix, on one line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OODBenchError(Exception):
    """Base class; the CLI prints ``str(error)`` on one line and exits with ``exit_code``."""

    exit_code: int = 1


class UnknownNameError(OODBenchError):
    """An unknown method, suite, backbone or component name (exit code 2, like a usage error)."""

    exit_code = 2

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if len(known) <= 12 else f"{len(known)}; see `oodbench {kind}s`"
        super().__init__(f"Unknown {kind} {name!r}.{hint} Known: {listing}.")
        self.kind, self.name, self.close = kind, name, close


class ParameterError(OODBenchError):
    """A bad ``--param`` or method-file parameter."""

    exit_code = 2


class SuiteError(OODBenchError):
    """A malformed suite file (exit code 2, like a usage error)."""

    exit_code = 2


class PluginError(OODBenchError):
    """A plugin failed to load or registered something invalid."""


class MissingDataError(OODBenchError):
    """A dataset, package or file that a run needs is not on this machine."""


class OfflineError(OODBenchError):
    """A model hub or dataset host could not be reached (or HF_HUB_OFFLINE is set)."""


class ResourceError(OODBenchError):
    """Out of memory or another resource limit that a smaller setting avoids."""


class RecordError(OODBenchError):
    """A result record that does not match the published schema (``oodbench schema record``)."""

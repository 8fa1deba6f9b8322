"""The reliability matrix: each bad-input test states what a user sees, and
``scripts/reliability_table.py`` renders those statements, one row per collected test case,
into the README's reliability section (``--check`` in CI), so the table is the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def matrix(outcome: str, exit_code: int | None, left: str, recovery: str) -> Callable[[F], F]:
    """Tag a test as a row of the matrix: what happens, the exit code (None: the run goes on),
    what is left on disk, and how the user recovers."""

    def tag(test: F) -> F:
        test.reliability = {"outcome": outcome, "exit": exit_code, "left": left,  # type: ignore[attr-defined]
                            "recovery": recovery}
        return test

    return tag

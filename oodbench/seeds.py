"""How many seeds (generations) a run averages, and each generation's components.

A run is *stochastic* when one of its components has a ``seed`` parameter (OLE's clustering,
SynOOD's noise and training) or a label generator declares ``generations`` as a parameter
(EOE, MM-OOD and CSP draw from the run seed). Generation g of a run uses the run seed + g, and
every component with a ``seed`` parameter runs with that seed + g, so generation 0 is exactly
the single-seed run (same parameters, same cache keys) and the others are independent draws.

The count, in order of precedence: ``--seeds N``; a ``generations`` override (``-p
x.generations=N``); on the offline suites, at least :data:`OFFLINE_SEEDS` for a stochastic
method (they are small and cheap, and a leaderboard of one draw ranks noise); otherwise the
label generator's ``generations`` (1 unless it is a parameter with another default). Real suites
default to one seed: several are ``--seeds 3`` away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from oodbench.errors import OODBenchError

OFFLINE_SEEDS = 3


def _fields(component: Any) -> set[str]:
    return ({f.name for f in dataclasses.fields(component)}
            if dataclasses.is_dataclass(component) else set())


def declared_generations(components: Sequence[tuple[str, Any]]) -> int:
    """The label generator's ``generations`` (the contract's default is 1)."""
    for role, component in components:
        if role == "label_generator":
            value = component.generations
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise OODBenchError(f"{component.name}.generations must be an integer >= 1, "
                                    f"got {value!r}.")
            return value
    return 1


def has_seed_parameter(components: Sequence[tuple[str, Any]]) -> bool:
    return any("seed" in _fields(c) for _, c in components)


def is_stochastic(components: Sequence[tuple[str, Any]]) -> bool:
    """A component draws from a seed: it has a ``seed`` parameter, or it is a label generator
    with ``generations`` as a parameter (it draws from the run seed)."""
    return has_seed_parameter(components) or any(
        role == "label_generator" and "generations" in _fields(c) for role, c in components)


def generation_count(components: Sequence[tuple[str, Any]], seeds: int | None,
                     overrides: Mapping[str, str], offline: bool) -> int:
    """N for this run (see the module docstring for the precedence)."""
    declared = declared_generations(components)
    if seeds is not None:
        if seeds < 1:
            raise OODBenchError(f"--seeds must be at least 1, got {seeds}.")
        return seeds
    if any(key == "generations" or key.endswith(".generations") for key in overrides):
        return declared
    if offline and is_stochastic(components):
        return max(declared, OFFLINE_SEEDS)
    return declared


@contextmanager
def seeds_moved_on(components: Sequence[tuple[str, Any]], g: int) -> Iterator[None]:
    """Generation ``g``: every component's ``seed`` parameter moved on by g for the duration
    (in place, so what a component prepared in ``preflight`` is kept), then put back."""
    seeded = [c for _, c in components if "seed" in _fields(c)]
    originals = [c.seed for c in seeded]
    for component, seed in zip(seeded, originals, strict=True):
        component.seed = seed + g
    try:
        yield
    finally:
        for component, seed in zip(seeded, originals, strict=True):
            component.seed = seed

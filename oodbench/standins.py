"""Paper settings on real data, explicit stand-ins, and the record of what was substituted.

A component declares ``paper_settings``: the paper's value of each parameter whose default is
an offline stand-in (the 32 px mini-diffusion instead of SD-2-inpainting, N = 4 instead of 50).
On a suite whose data are real the runner fills those values in unless the run (method file or
``-p``) sets the parameter, so a real run gets the paper's setting by default and a stand-in
only on request. Every paper setting a real run departs from is a *substitution*: the record
names them and the leaderboard shows such rows apart from paper-setting rows. Offline suites
keep the components' own defaults and record no substitutions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from oodbench.components import Component, coerce
from oodbench.data.suite import Suite


def is_offline(suite: Suite) -> bool:
    """True when every set of the suite comes from the offline mini world."""
    sources = [suite.id_test, *(s.source for s in suite.ood)]
    return all(src.get("type") == "offline" for src in sources)


def with_paper_settings(cls: type[Component], params: Mapping[str, Any], real: bool
                        ) -> dict[str, Any]:
    """``params`` with the paper's settings filled in for the parameters it leaves unset."""
    if not real:
        return dict(params)
    fields = cls.param_fields()
    paper = {k: v for k, v in cls.paper_settings.items() if k in fields and k not in params}
    return {**paper, **params}


def substitutions(components: Iterable[tuple[str, Component]]) -> dict[str, Any]:
    """``component.parameter`` -> value, for every paper setting the components depart from."""
    out: dict[str, Any] = {}
    for _, component in components:
        fields = component.param_fields()
        for field, paper in component.paper_settings.items():
            if field not in fields:  # a parameter this variant hides (fixed by the variant)
                continue
            value = getattr(component, field)
            if value != coerce(paper, fields[field], f"{component.name}.{field}"):
                out[f"{component.name}.{field}"] = component.params()[field]
    return out


def substitution_tag(subs: Mapping[str, Any]) -> str:
    """A short mark for a leaderboard row: the substituted values, e.g. "mini-diffusion, N=4"."""
    parts = []
    for key, value in subs.items():
        field = key.rpartition(".")[2]
        parts.append(str(value) if isinstance(value, str) else f"{field}={value}")
    return ", ".join(parts)


def check_backend(env: Any, kind: str, name: str, params: Mapping[str, Any] | None,
                  stand_in: str) -> None:
    """Raise the one-line error of a generative backend that cannot be loaded here (a hub
    model neither local nor cached, with the hub unreachable); ``stand_in`` names the setting
    that selects the offline stand-in instead. Loads nothing."""
    backend = env.registry.create(kind, name, dict(params or {}))
    check = getattr(backend, "check_available", None)
    if check is not None:
        check(stand_in)

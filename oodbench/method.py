"""How a method runs: CLI overrides assigned to its components and the backbone's parameters
for it. :class:`MethodSpec` and :class:`ComponentRef` (what a method is) are defined in
:mod:`oodbench.contracts.method` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from oodbench.contracts.method import ComponentRef, MethodSpec
from oodbench.errors import ParameterError
from oodbench.standins import is_offline

if TYPE_CHECKING:
    from oodbench.backbones.base import Backbone
    from oodbench.data.suite import Suite

__all__ = ["ComponentRef", "MethodSpec", "backbone_params", "preprocessing_record",
           "split_overrides"]


def split_overrides(
    spec: MethodSpec, overrides: dict[str, str], fields_of: dict[str, set[str]]
) -> dict[str, dict[str, str]]:
    """Assign CLI ``--param`` overrides to components.

    ``role.field`` or ``component-name.field`` addresses one component (roles: label_generator,
    synthesizer, finetuner, scorer); a bare ``field`` goes to every component that has it, and
    is an error if none has it. ``fields_of`` maps component name -> its parameter names.
    Returns component name -> {field: value}.
    """
    refs = spec.components()
    out: dict[str, dict[str, str]] = {ref.name: {} for _, _, ref in refs}
    for key, value in overrides.items():
        prefix, dot, field_name = key.rpartition(".")
        if dot:
            targets = [r.name for role, _, r in refs if prefix in (role, r.name)]
            if not targets:
                names = ", ".join(sorted({role for role, _, _ in refs} | set(out)))
                raise ParameterError(f"--param {key}: no component {prefix!r} in {spec.name}; "
                                     f"use one of: {names}.")
        else:
            field_name = key
            targets = [r.name for _, _, r in refs if key in fields_of.get(r.name, set())]
            if not targets:
                raise ParameterError(
                    f"--param {key}: no component of method {spec.name!r} has a parameter "
                    f"{key!r}; see `oodbench methods {spec.name}` for the parameters."
                )
        for target in targets:
            out[target][field_name] = value
    return out


def backbone_params(spec: MethodSpec, suite: Suite, backbone_cls: type[Backbone],
                    given: Mapping[str, Any]) -> dict[str, Any]:
    """The backbone's parameters for a run: ``given`` (``--backbone-param``), plus the method's
    reference ``interpolation`` on a real suite when the backbone has that parameter and
    ``given`` does not set it. Offline suites and the mini backbone (no such parameter) keep
    their preprocessing exactly."""
    params = dict(given)
    wanted = spec.reference_interpolation
    if (wanted and not is_offline(suite) and "interpolation" not in params
            and "interpolation" in backbone_cls.param_fields()):
        params["interpolation"] = wanted
    return params


def preprocessing_record(backbone: Backbone, spec: MethodSpec, suite: Suite,
                         given: Mapping[str, Any]) -> dict[str, Any]:
    """``{"preprocessing": {"interpolation", "chosen_by"}}`` for the record's backbone section;
    empty for a backbone without the choice (the offline mini: its records keep their keys)."""
    used = backbone.interpolation_used()
    if used is None:
        return {}
    if "interpolation" in given:
        chosen_by = "backbone parameter"
    elif backbone_params(spec, suite, type(backbone), {}).get("interpolation"):
        chosen_by = f"method {spec.name} (its reference code's preprocessing)"
    else:
        chosen_by = "backbone default"
    return {"preprocessing": {"interpolation": used, "chosen_by": chosen_by}}

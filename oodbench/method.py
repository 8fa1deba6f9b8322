"""Methods are data: a named composition of registered components with parameters."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from oodbench.errors import OODBenchError, ParameterError
from oodbench.standins import is_offline

if TYPE_CHECKING:
    from oodbench.backbones.base import Backbone
    from oodbench.data.suite import Suite

ROLES = ("label_generator", "synthesizer", "finetuners", "scorer")
INTERPOLATIONS = ("model", "bilinear", "bicubic")


@dataclass(frozen=True)
class ComponentRef:
    """A registered component by name, with parameter overrides."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str | dict[str, Any] | ComponentRef) -> ComponentRef:
        if isinstance(value, ComponentRef):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and "name" in value:
            unknown = sorted(set(value) - {"name", "params"})
            if unknown:
                raise ParameterError(f"Component {value['name']!r}: unknown key {unknown[0]!r}"
                                     f"{_did_you_mean(unknown[0], ('name', 'params'))}; a "
                                     f"component is {{name: ..., params: {{...}}}}.")
            params = value.get("params") or {}
            if not isinstance(params, dict):
                raise ParameterError(f"Component {value['name']!r}: params must be a mapping "
                                     f"(field: value), got {params!r}.")
            return cls(str(value["name"]), dict(params))
        raise ParameterError(f"A component reference needs a name, got {value!r}.")


@dataclass(frozen=True)
class MethodSpec:
    """What ``oodbench run --method NAME`` runs.

    The runner executes: ``label_generator`` -> ``synthesizer`` -> each of ``finetuners`` in
    order -> ``scorer``. Only the scorer is required.
    """

    name: str
    scorer: ComponentRef
    description: str = ""
    label_generator: ComponentRef | None = None
    synthesizer: ComponentRef | None = None
    finetuners: tuple[ComponentRef, ...] = ()
    # the paper the defaults follow, shown by `oodbench methods`
    reference: str = ""
    # resize filter of the preprocessing its published numbers used, selected on real suites:
    # "bilinear" | "bicubic" | "model" or "" (the backbone's own). MCM, NegLabel and EOE
    # resize with torchvision's default bilinear Resize(224) -> CenterCrop(224); open_clip and
    # OpenAI CLIP use bicubic.
    interpolation: str = ""

    def __post_init__(self) -> None:
        if self.interpolation not in ("", *INTERPOLATIONS):
            raise OODBenchError(f"method {self.name!r}: interpolation must be one of "
                                f"{', '.join(INTERPOLATIONS)}, got {self.interpolation!r}.")

    @property
    def reference_interpolation(self) -> str:
        """"bilinear"/"bicubic" when the published numbers used that filter, "" when they used
        the backbone's own preprocessing (or nothing is known)."""
        return "" if self.interpolation == "model" else self.interpolation

    def components(self) -> list[tuple[str, str, ComponentRef]]:
        """(role, kind, ref) for every component, in execution order."""
        out: list[tuple[str, str, ComponentRef]] = []
        if self.label_generator:
            out.append(("label_generator", "label_generator", self.label_generator))
        if self.synthesizer:
            out.append(("synthesizer", "synthesizer", self.synthesizer))
        out.extend(("finetuner", "finetuner", ref) for ref in self.finetuners)
        out.append(("scorer", "scorer", self.scorer))
        return out

    def to_dict(self) -> dict[str, Any]:
        def ref(r: ComponentRef | None) -> dict[str, Any] | None:
            return None if r is None else {"name": r.name, "params": dict(r.params)}

        out = {
            "name": self.name,
            "description": self.description,
            "label_generator": ref(self.label_generator),
            "synthesizer": ref(self.synthesizer),
            "finetuners": [ref(r) for r in self.finetuners],
            "scorer": ref(self.scorer),
        }
        if self.interpolation:  # only when the spec sets it: existing records keep their keys
            out["interpolation"] = self.interpolation
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "method") -> MethodSpec:
        allowed = ("name", "description", "reference", "interpolation", *ROLES)
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ParameterError(f"{where}: unknown field {unknown[0]!r}"
                                 f"{_did_you_mean(unknown[0], allowed)}; allowed: "
                                 f"{', '.join(allowed)}.")
        if "scorer" not in data or "name" not in data:
            raise ParameterError(f"{where}: a method needs 'name' and 'scorer'.")
        tuners = data.get("finetuners") or []
        if isinstance(tuners, str | dict):  # one fine-tuner, not a list of letters
            tuners = [tuners]
        return cls(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            reference=str(data.get("reference", "")),
            scorer=ComponentRef.parse(data["scorer"]),
            label_generator=_opt(data.get("label_generator")),
            synthesizer=_opt(data.get("synthesizer")),
            finetuners=tuple(ComponentRef.parse(t) for t in tuners),
            interpolation=str(data.get("interpolation") or ""),
        )

    @classmethod
    def from_file(cls, path: Path) -> MethodSpec:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise OODBenchError(f"Cannot read method file {path}: {exc}.") from None
        if not isinstance(data, dict):
            raise OODBenchError(f"Method file {path} must be a YAML mapping.")
        return cls.from_dict(data, where=str(path))


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _opt(value: Any) -> ComponentRef | None:
    return None if value in (None, "", "none") else ComponentRef.parse(value)


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

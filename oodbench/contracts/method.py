"""Methods are data: a named composition of registered components with parameters.

A plugin registers a :class:`MethodSpec`; a user writes the same as YAML (``--method m.yaml``),
validated by :class:`MethodFile`::

    name: neglabel-tuned           # required
    description: NegLabel with a recentred head
    reference: arXiv:2403.20078    # the paper the defaults follow (shown by `oodbench methods`)
    interpolation: bilinear        # "" | model | bilinear | bicubic (see MethodSpec)
    backbones: {mini: mini-clipn}  # the backbone it runs on in place of a suite's default
    label_generator: {name: neglabel-wordnet, params: {count: 2000}}
    synthesizer: none              # optional; a name, {name, params} or none
    finetuners: [recenter]         # a list, or one name (`finetuners: recenter`)
    scorer: neglabel               # required; a name or {name: ..., params: {...}}

An unknown key (``param:``, ``finetuner:``) is an error with "did you mean ...?".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from oodbench.errors import OODBenchError, ParameterError
from oodbench.validation import problems

ROLES = ("label_generator", "synthesizer", "finetuners", "scorer")
Interpolation = Literal["", "model", "bilinear", "bicubic"]
INTERPOLATIONS = ("model", "bilinear", "bicubic")


@dataclass(frozen=True)
class ComponentRef:
    """A registered component by name, with parameter overrides."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str | dict[str, Any] | ComponentRef) -> ComponentRef:
        """A name, ``{name: ..., params: {...}}`` or a ComponentRef; ParameterError otherwise."""
        if isinstance(value, ComponentRef):
            return value
        try:
            entry = ComponentEntry.model_validate(_named(value))
        except ValidationError as exc:
            raise ParameterError(f"Component {value!r}: {_problem(exc, ComponentEntry)}") from None
        return entry.ref()


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
    interpolation: Interpolation = ""
    # suite backbone -> the backbone this method runs on instead, when --backbone is not given:
    # a method that needs a model variant (CLIPN's "no" tower) names it per suite backbone
    backbones: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interpolation not in ("", *INTERPOLATIONS):
            raise OODBenchError(f"method {self.name!r}: interpolation must be one of "
                                f"{', '.join(INTERPOLATIONS)}, got {self.interpolation!r}.")

    def backbone_for(self, suite_backbone: str) -> str:
        """The backbone this method runs on for a suite whose default is ``suite_backbone``."""
        return self.backbones.get(suite_backbone, suite_backbone)

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
        if self.backbones:
            out["backbones"] = dict(self.backbones)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "method") -> MethodSpec:
        """The spec of a method file's content; ParameterError (one line, ``where`` first)."""
        try:
            return MethodFile.model_validate(data).spec()
        except ValidationError as exc:
            raise ParameterError(f"{where}: {_problem(exc, MethodFile)}") from None

    @classmethod
    def from_file(cls, path: Path) -> MethodSpec:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            reason = " ".join(str(exc).split())
            raise ParameterError(f"Cannot read method file {path}: {reason}; give a YAML "
                                 f"method file.") from None
        if not isinstance(data, dict):
            raise ParameterError(f"Method file {path} must be a YAML mapping (name: ..., "
                                 f"scorer: ...).")
        return cls.from_dict(data, where=f"Method file {path}")


# -- the YAML form ---------------------------------------------------------------------------------
def _named(value: Any) -> Any:
    """A bare name stands for ``{name: NAME}``."""
    return {"name": value} if isinstance(value, str) else value


def _optional(value: Any) -> Any:
    return None if value in (None, "", "none") else _named(value)


def _one_or_many(value: Any) -> Any:
    """``finetuners: recenter`` is one fine-tuner, not a list of letters."""
    if value is None:
        return []
    return [_named(v) for v in value] if isinstance(value, list) else [_named(value)]


def _mapping_or_empty(value: Any) -> Any:
    return {} if value is None else value


_FORM = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class ComponentEntry(BaseModel):
    """One component of a method file: a name, or ``{name: ..., params: {field: value}}``."""

    model_config = _FORM

    name: str = Field(min_length=1)
    params: Annotated[dict[str, Any], BeforeValidator(_mapping_or_empty),
                      Field(description="field: value")] = {}

    def ref(self) -> ComponentRef:
        return ComponentRef(self.name, dict(self.params))


Entry = Annotated[ComponentEntry, BeforeValidator(_named)]
OptionalEntry = Annotated[ComponentEntry | None, BeforeValidator(_optional)]


class MethodFile(BaseModel):
    """A YAML method file (``--method path.yaml``); the fields of :class:`MethodSpec`."""

    model_config = _FORM

    name: str = Field(min_length=1)
    description: str = ""
    reference: str = ""
    interpolation: Annotated[Interpolation, BeforeValidator(lambda v: v or "")] = ""
    backbones: Annotated[dict[str, str], BeforeValidator(_mapping_or_empty),
                         Field(description="suite backbone: backbone")] = {}
    label_generator: OptionalEntry = None
    synthesizer: OptionalEntry = None
    finetuners: Annotated[list[Entry], BeforeValidator(_one_or_many)] = []
    scorer: Entry

    def spec(self) -> MethodSpec:
        return MethodSpec(
            name=self.name, description=self.description, reference=self.reference,
            interpolation=self.interpolation, backbones=dict(self.backbones),
            scorer=self.scorer.ref(),
            label_generator=self.label_generator.ref() if self.label_generator else None,
            synthesizer=self.synthesizer.ref() if self.synthesizer else None,
            finetuners=tuple(f.ref() for f in self.finetuners),
        )


def _problem(exc: ValidationError, model: type[BaseModel]) -> str:
    found = problems(exc, model)
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return f"{found[0]}{more}; a method is {{name, scorer[, description, reference, " \
           f"interpolation, backbones, label_generator, synthesizer, finetuners]}}, " \
           f"a component a name or {{name: ..., params: {{field: value}}}}."

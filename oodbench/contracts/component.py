"""Components: small classes with a name, typed parameters (dataclass fields) and one job.

Parameters come from three places, in order of precedence: ``--param`` on the CLI, the method
file / method spec, and the dataclass defaults. Values arriving as strings (CLI) are coerced to
the field's declared type once, in :meth:`Component.from_params` (:mod:`oodbench.contracts.params`
says which types a parameter may have), so components never parse their own options.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from oodbench.contracts.params import coerce
from oodbench.errors import ParameterError


@dataclasses.dataclass
class Component:
    """Base of every registered component kind (scorer, label generator, ...)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kind: ClassVar[str] = "component"
    # The paper's setting of each parameter whose default is an offline stand-in (a small model,
    # a smaller N): on a suite with real data the runner uses these values unless the run sets
    # the parameter itself, and records every paper setting the run departs from as a
    # substitution (oodbench.standins).
    paper_settings: ClassVar[dict[str, Any]] = {}

    def preflight(self, env: Any) -> None:
        """Cheap check, before any work, that what the component needs can be loaded here;
        raise a one-line :class:`~oodbench.errors.OODBenchError` naming the fix otherwise."""

    @classmethod
    def param_fields(cls) -> dict[str, Any]:
        """Parameter name -> declared type (resolved), for every public dataclass field."""
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        return {f.name: hints[f.name] for f in fields if not f.name.startswith("_")}

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Self:
        """Build an instance, coercing string values to the declared field types."""
        params = dict(params or {})
        fields = cls.param_fields()
        unknown = sorted(set(params) - set(fields))
        if unknown:
            known = ", ".join(sorted(fields)) or "none"
            raise ParameterError(
                f"{cls.kind} {cls.name!r} has no parameter {unknown[0]!r}; its parameters: {known}."
            )
        kwargs = {k: coerce(v, fields[k], f"{cls.name}.{k}") for k, v in params.items()}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{cls.kind} {cls.name!r}: {exc}") from exc

    def check_positive(self, *fields: str) -> None:
        """Raise ValueError (a one-line ParameterError from ``from_params``) unless each field
        is > 0: a temperature of 0 or -1 would score nonsense, not fail."""
        for field in fields:
            if not getattr(self, field) > 0:
                raise ValueError(f"{field} must be > 0, got {getattr(self, field)!r}")

    def params(self) -> dict[str, Any]:
        """The resolved parameters, JSON-serialisable, for result records and cache keys."""
        return {k: _jsonable(getattr(self, k)) for k in self.param_fields()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)

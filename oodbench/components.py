"""Components: small classes with a name, typed parameters (dataclass fields) and one job.

Parameters come from three places, in order of precedence: ``--param`` on the CLI, the method
file / method spec, and the dataclass defaults. Values arriving as strings (CLI) are coerced to
the field's declared type here, once, so components never parse their own options.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

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


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Coerce ``value`` (often a CLI string) to ``annotation``; ParameterError names ``where``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in {"none", "null"})
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, where)
            except ParameterError as exc:
                errors.append(str(exc))
        raise ParameterError(errors[0] if errors else f"{where}: cannot use {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ParameterError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}.")
    if annotation is Any:
        return value
    if origin in (list, tuple):
        items = _as_list(value, where)
        inner = args[0] if args else Any
        out = [coerce(v, inner, where) for v in items]
        return out if origin is list else tuple(out)
    if origin is dict or annotation is dict:
        if isinstance(value, str):
            value = _parse_json(value, where)
        if not isinstance(value, dict):
            raise ParameterError(f"{where} expects a mapping (JSON object), got {value!r}.")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ParameterError(f"{where} expects true/false, got {value!r}.")
    if annotation in (int, float, str):
        if isinstance(value, bool) and annotation is not str:
            raise ParameterError(f"{where} expects {annotation.__name__}, got {value!r}.")
        try:
            converted = annotation(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{where} expects {annotation.__name__}, got {value!r}."
            ) from None
        if annotation is int and isinstance(value, float) and converted != value:
            raise ParameterError(f"{where} expects an integer, got {value!r}.")
        if annotation is float and not math.isfinite(converted):
            raise ParameterError(f"{where} must be a finite number, got {value!r}.")
        return converted
    return value


def _as_list(value: Any, where: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = _parse_json(text, where)
            if isinstance(parsed, list):
                return parsed
        return [v.strip() for v in text.split(",") if v.strip()]
    return [value]


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{where}: {text!r} is not valid JSON ({exc.msg}).") from None


def parse_param_args(items: list[str]) -> dict[str, str]:
    """``["scorer.temperature=0.5", "k=3"]`` -> ``{"scorer.temperature": "0.5", "k": "3"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param {item!r} is not of the form key=value.")
        out[key.strip()] = value.strip()
    return out

"""Component parameters: values from the CLI (strings), method files and presets, made into the
types a component's dataclass fields declare.

The declared type is the contract: ``int``, ``float`` (finite), ``bool`` (true/false, yes/no,
on/off, 1/0), ``str``, ``Literal["a", "b"]`` (the allowed values of a choice, listed in ``--help``
and ``oodbench methods``), ``X | None`` ("none" or "null" is None), ``list[X]`` / ``tuple[X, ...]``
(a comma-separated string or a JSON list) and ``dict`` (a JSON object). The leaf types are
validated by pydantic (:class:`pydantic.TypeAdapter`); a bad value is one
:class:`~oodbench.errors.ParameterError` line naming ``component.field``, the value and what
would be accepted.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from oodbench.errors import ParameterError

_CONFIG = ConfigDict(allow_inf_nan=False, coerce_numbers_to_str=True)


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Coerce ``value`` (often a CLI string) to ``annotation``; ParameterError names ``where``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in {"none", "null"})
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):  # the first type that fits wins
            try:
                return coerce(value, arg, where)
            except ParameterError as exc:
                errors.append(str(exc))
        raise ParameterError(errors[0] if errors else f"{where}: cannot use {value!r}.")
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
    if annotation in (int, float) and isinstance(value, bool):
        raise ParameterError(f"{where} expects {annotation.__name__}, got {value!r}.")
    if annotation in (int, float, bool, str) or origin is typing.Literal:
        try:
            return _adapter(annotation).validate_python(value)
        except ValidationError as exc:
            raise ParameterError(_message(exc, annotation, value, where)) from None
    return value


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation, config=_CONFIG)


def _message(exc: ValidationError, annotation: Any, value: Any, where: str) -> str:
    """The pydantic error as a line that says what would be accepted."""
    kind = exc.errors(include_url=False)[0]["type"]
    if kind == "literal_error":
        choices = ", ".join(map(repr, typing.get_args(annotation)))
        return f"{where} must be one of {choices}, got {value!r}."
    if kind == "finite_number":
        return f"{where} must be a finite number, got {value!r}."
    if kind == "int_from_float":
        return f"{where} expects an integer, got {value!r}."
    if kind == "bool_parsing" or annotation is bool:
        return f"{where} expects true/false, got {value!r}."
    return f"{where} expects {getattr(annotation, '__name__', annotation)}, got {value!r}."


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

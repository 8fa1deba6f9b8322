"""pydantic validation errors as oodbench's one-line messages: the field, what is wrong, the fix.

The suite, method-file, component-parameter and result-record models all report through
:func:`problems`, so every malformed file reads the same way: an unknown key comes first, with
"did you mean ...?" against the fields allowed at that place.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


def field_path(loc: Sequence[str | int]) -> str:
    """``("metrics", "birds", "auroc")`` -> ``metrics.birds.auroc``; list indices as ``[i]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def problems(exc: ValidationError, model: type[BaseModel] | None = None,
             prefix: Sequence[str | int] = ()) -> list[str]:
    """One ``field: problem`` line per error, unknown keys first (they explain the missing);
    ``prefix`` is where ``model`` sits in a larger file (it starts every field name)."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    return [_line(error, model, tuple(prefix)) for error in errors]


_NOUNS = {"dict_type": "a mapping", "model_type": "a mapping", "list_type": "a list",
          "string_type": "a string", "int_type": "an integer", "int_parsing": "an integer",
          "int_from_float": "an integer", "float_type": "a number", "float_parsing": "a number",
          "bool_type": "true or false", "bool_parsing": "true or false"}
_SHOW_INPUT = {"enum", "greater_than", "greater_than_equal", "less_than",
               "less_than_equal", "too_short", "too_long", "finite_number"}


def _line(error: Any, model: type[BaseModel] | None, prefix: tuple[str | int, ...]) -> str:
    loc = tuple(error["loc"])
    where = field_path(prefix + loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = fields_at(model, loc[:-1]) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"unknown field {where!r}{hint}{listing}"
    if kind == "missing":
        return f"missing field {where!r}"
    shown = _short(error.get("input"))
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        if " or " in expected:
            expected = "one of " + expected.replace(" or ", ", ")
        return f"{where} must be {expected}, got {shown}"
    if kind in _NOUNS:
        return f"{where} must be {_NOUNS[kind]}, got {shown}"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = message[0].lower() + message[1:] if message else message
    if kind in _SHOW_INPUT:
        message += f", got {shown}"
    if not loc and not prefix:
        return message
    # a validator's "must ..." reads on from the field's name
    return f"{where} {message}" if message.startswith("must ") else f"{where}: {message}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The field names (aliases) of the model found at ``loc`` inside ``model`` ([] if none)."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip ``X | None`` and ``Annotated[X, ...]`` down to X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, f in annotation.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (list, tuple) and args:
        return args[0]
    return None

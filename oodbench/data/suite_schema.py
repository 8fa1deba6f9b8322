"""The shape of a suite file as pydantic models: which keys exist, their types and choices.

:func:`validate_suite` checks a suite's content (after ``include:``) and raises one
:class:`~oodbench.errors.SuiteError` line naming the suite file, the field and the fix, with
"did you mean ...?" for an unknown key. What needs the file system (class lists, manifests,
prompt placeholders) is checked by :mod:`oodbench.data.suite` afterwards. The models only
validate: the suite's dicts (its sources) are used as written, so its hash and the image
fingerprints do not depend on them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from oodbench.errors import SuiteError
from oodbench.validation import field_path, problems

_FORM = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


def _positive(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value


def _select(value: Any) -> Any:
    if value is not None and not (isinstance(value, dict) and all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values())):
        raise ValueError(f"must map a field to a list of names, e.g. {{category: [flag, star]}}, "
                         f"got {value!r}")
    return value


def _non_empty_list(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of OOD sets ({name, group, source})")
    return value


def _string(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"must be a string (e.g. bird), got {value!r}")
    return value


Positive = Annotated[int, BeforeValidator(_positive)]


class _Source(BaseModel):
    """Keys every source may have."""

    model_config = _FORM

    type: str
    obtain: Any = Field(default=None, description="how to get the data by hand (shown)")
    expected_count: Positive | None = None


class ImageFolderSource(_Source):
    type: Literal["imagefolder"]
    root: Any = None
    class_dirs: Any = None
    manifest: Any = None
    imglist: Any = None
    imglist_root: Any = None


class OfflineSource(_Source):
    type: Literal["offline"]
    split: Any = None
    select: Annotated[dict[str, list[str]] | None, BeforeValidator(_select)] = None


class HFSource(_Source):
    type: Literal["hf"]
    id: Any = None
    config: Any = None
    split: Any = None
    image: Any = None
    label: Any = None
    labels: Any = None


SOURCES: dict[str, type[_Source]] = {"imagefolder": ImageFolderSource, "offline": OfflineSource,
                                     "hf": HFSource}


class IdPart(BaseModel):
    model_config = _FORM

    name: str | None = None
    classes: Any = Field(description="a list, {file: PATH} or a named list")
    test: dict[str, Any]
    train: dict[str, Any] | None = None


class OODEntry(BaseModel):
    model_config = _FORM

    name: str
    group: Literal["near", "far", "extra"] = "far"
    source: dict[str, Any]


class SuiteFile(BaseModel):
    """A suite file's content after its includes."""

    model_config = _FORM

    name: str | None = None
    version: Positive = 1
    description: str = ""
    task: Literal["far", "near", "fine-grained"] = "far"
    backbone: str | None = None
    class_type: Annotated[str, BeforeValidator(_string)] = ""
    fpr_convention: Literal["paper", "openood"] | None = None
    id: IdPart
    prompts: Any = None
    ood: Annotated[list[OODEntry], BeforeValidator(_non_empty_list)]


def validate_suite(data: dict[str, Any], where: str) -> SuiteFile:
    """The validated suite; SuiteError (one line, ``where`` first) on the first problem."""
    try:
        form = SuiteFile.model_validate(data)
    except ValidationError as exc:
        raise _error(where, problems(exc, SuiteFile)) from None
    parts: list[tuple[tuple[str | int, ...], dict[str, Any] | None]] = [
        (("id", "test"), form.id.test), (("id", "train"), form.id.train)]
    parts += [(("ood", i, "source"), item.source) for i, item in enumerate(form.ood)]
    for loc, source in parts:
        if source is not None:
            _validate_source(source, where, loc)
    return form


def _validate_source(source: dict[str, Any], where: str, loc: tuple[str | int, ...]) -> None:
    kind = source.get("type")
    model = SOURCES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise _error(where, [f"{field_path(loc)}.type must be one of {', '.join(SOURCES)}, "
                             f"got {kind!r}"])
    try:
        model.model_validate(source)
    except ValidationError as exc:
        raise _error(where, problems(exc, model, loc)) from None


def _error(where: str, found: list[str]) -> SuiteError:
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return SuiteError(f"{where}: {found[0]}{more}; fix the suite file.")

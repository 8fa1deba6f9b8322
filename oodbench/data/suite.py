"""Suite files: declarative YAML naming the ID set (classes, prompts, sources) and OOD sets.

A suite may ``include:`` another file (path relative to itself); its own keys override the
included ones (mappings merge recursively, lists replace). The suite's ``hash`` is the SHA-256
of the resolved content, so a result record pins exactly what ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oodbench.cache import content_key
from oodbench.errors import OODBenchError

GROUPS = ("near", "far")
TASKS = ("far", "near", "fine-grained")


@dataclass(frozen=True)
class OODSet:
    name: str
    group: str
    source: dict[str, Any]


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    task: str
    classes: tuple[str, ...]
    prompts: tuple[str, ...]
    id_name: str
    id_test: dict[str, Any]
    id_train: dict[str, Any] | None
    ood: tuple[OODSet, ...]
    path: Path
    hash: str
    backbone: str | None = None
    resolved: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {g: [] for g in GROUPS}
        for s in self.ood:
            out[s.group].append(s.name)
        return {g: names for g, names in out.items() if names}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise OODBenchError(f"Suite {path} includes itself (include cycle).")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise OODBenchError(f"Suite file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise OODBenchError(f"Suite file {path} is not valid YAML: {_one_line(exc)}.") from None
    if not isinstance(data, dict):
        raise OODBenchError(f"Suite file {path} must be a YAML mapping.")
    include = data.pop("include", None)
    if include:
        for inc in [include] if isinstance(include, str) else include:
            data = _merge(_read(path.parent / inc, (*seen, path)), data)
    return data


def _named_list(value: Any, base: Path, where: str) -> list[str]:
    """A list given inline, as ``{file: relative/path.txt}`` (one per line) or a named set."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict) and "file" in value:
        file = base / str(value["file"])
        if not file.exists():
            raise OODBenchError(f"{where}: list file {file} does not exist.")
        return [line.strip() for line in file.read_text().splitlines() if line.strip()]
    if isinstance(value, dict) and value.get("from") == "open_clip-imagenet":
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        return list(IMAGENET_CLASSNAMES)
    if value == "openai-80":
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

        return [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]
    raise OODBenchError(f"{where}: expected a list, {{file: PATH}}, {{from: open_clip-imagenet}}"
                        f" or openai-80, got {value!r}.")


def _resolve_class_dirs(source: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    dirs = source.get("class_dirs")
    if dirs is None or isinstance(dirs, list) or dirs == "sorted":
        return source
    return {**source, "class_dirs": _named_list(dirs, base, where)}


def load_suite(path: Path) -> Suite:
    path = Path(path)
    data = _read(path)
    where = f"suite {path.name}"

    def need(mapping: dict[str, Any], key: str, ctx: str) -> Any:
        if key not in mapping:
            raise OODBenchError(f"{where}: missing '{key}' in {ctx}.")
        return mapping[key]

    id_part = need(data, "id", "the top level")
    classes = _named_list(need(id_part, "classes", "id"), path.parent, f"{where} id.classes")
    if not classes:
        raise OODBenchError(f"{where}: id.classes must be a non-empty list of class names.")
    prompts = _named_list(data.get("prompts") or ["a photo of a {}."], path.parent,
                          f"{where} prompts")
    for p in prompts:
        if "{}" not in p:
            raise OODBenchError(f"{where}: prompt {p!r} has no '{{}}' placeholder for the class.")
    task = data.get("task", "far")
    if task not in TASKS:
        raise OODBenchError(f"{where}: task must be one of {TASKS}, got {task!r}.")
    ood_sets = []
    for i, item in enumerate(need(data, "ood", "the top level")):
        group = item.get("group", "far")
        if group not in GROUPS:
            raise OODBenchError(f"{where}: ood[{i}].group must be near or far, got {group!r}.")
        source = _resolve_class_dirs(dict(need(item, "source", f"ood[{i}]")), path.parent, where)
        ood_sets.append(OODSet(str(need(item, "name", f"ood[{i}]")), group, source))
    names = [s.name for s in ood_sets]
    if len(set(names)) != len(names):
        raise OODBenchError(f"{where}: OOD set names must be unique, got {names}.")
    name = str(data.get("name", path.stem))
    if name != path.stem:
        raise OODBenchError(f"{where}: name {name!r} must match the file name {path.stem!r}.")
    resolved = json.loads(json.dumps(data, default=str))
    return Suite(
        name=name,
        version=int(data.get("version", 1)),
        description=str(data.get("description", "")),
        task=task,
        classes=tuple(str(c) for c in classes),
        prompts=tuple(prompts),
        id_name=str(id_part.get("name", name)),
        id_test=_resolve_class_dirs(dict(need(id_part, "test", "id")), path.parent, where),
        id_train=_resolve_class_dirs(dict(id_part["train"]), path.parent, where)
        if id_part.get("train") else None,
        ood=tuple(ood_sets),
        path=path.resolve(),
        hash=content_key(resolved),
        backbone=data.get("backbone"),
        resolved=resolved,
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())

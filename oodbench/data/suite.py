"""Suite files: declarative YAML naming the ID set (classes, prompts, sources) and OOD sets.

A suite may ``include:`` another file (path relative to itself); its own keys override the
included ones (mappings merge recursively, lists replace). The suite's ``hash`` is the SHA-256
of the resolved content, so a result record pins exactly what ran. Unknown keys are errors (a
typo must not silently drop a setting). OOD sets are grouped ``near``, ``far`` or ``extra``:
extra sets are scored and reported per set but left out of the near/far averages (ImageNet-O
beside OpenOOD v1.5's own sets).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oodbench.cache import content_key
from oodbench.data.templates import OPENAI_80
from oodbench.errors import SuiteError
from oodbench.paths import data_dir

GROUPS = ("near", "far", "extra")
# the class lists shipped with oodbench (the built-in suites' `file: ../classlists/...`)
PACKAGE_CLASSLISTS = Path(__file__).resolve().parents[1] / "classlists"
PACKAGE_SUITES = Path(__file__).resolve().parents[1] / "suites"  # a suite may include these
TASKS = ("far", "near", "fine-grained")
TOP_KEYS = {"name", "version", "description", "task", "backbone", "id", "prompts", "ood",
            "class_type", "fpr_convention"}
FPR_CONVENTIONS = ("paper", "openood")
ID_KEYS = {"name", "classes", "test", "train"}
OOD_KEYS = {"name", "group", "source"}
SOURCE_KEYS = {"type", "obtain", "expected_count"}
SOURCE_TYPE_KEYS = {
    "imagefolder": {"root", "class_dirs", "manifest", "imglist", "imglist_root"},
    "offline": {"split", "select"},
    "hf": {"id", "config", "split", "image", "label", "labels"},
}


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
    # what kind of thing every ID class is ("bird", "food"): EOE's fine-grained prompt names it
    class_type: str = ""
    # the FPR95 convention a run uses when it names none (OpenOOD's suites: "openood")
    fpr_convention: str | None = None
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


def _read(path: Path, seen: tuple[Path, ...] = (),
          dirs: list[Path] | None = None) -> dict[str, Any]:
    """Read ``path`` with its includes; ``dirs`` collects the folders of every file read."""
    path = path.resolve()
    if seen:  # an include stays among the suite folders: no reading of arbitrary files
        _inside(path, [*(p.parent for p in seen), PACKAGE_SUITES],
                f"Suite {seen[0].name}: include {path}")
    if path in seen:
        chain = " -> ".join(p.name for p in (*seen, path))
        raise SuiteError(f"Suite {seen[0]} has an include cycle: {chain}; remove one include.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        by = f" (included by {seen[-1].name})" if seen else ""
        raise SuiteError(f"Suite file {path} does not exist{by}.") from None
    except IsADirectoryError:
        raise SuiteError(f"Suite file {path} is a folder; name a YAML file.") from None
    except (UnicodeDecodeError, ValueError):
        raise SuiteError(f"Suite file {path} is not a text (YAML) file.") from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"Suite file {path} is not valid YAML: {_one_line(exc)}.") from None
    if not isinstance(data, dict):
        raise SuiteError(f"Suite file {path} must be a YAML mapping.")
    if dirs is not None and path.parent not in dirs:
        dirs.append(path.parent)
    include = data.pop("include", None)
    if include:
        includes = [include] if isinstance(include, str) else include
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            raise SuiteError(f"Suite file {path}: include must be a file name or a list of "
                                f"them, got {include!r}.")
        for inc in includes:
            data = _merge(_read(path.parent / inc, (*seen, path), dirs), data)
    return data


def _named_list(value: Any, bases: Sequence[Path], where: str) -> list[str]:
    """A list given inline, as ``{file: relative/path.txt}`` (one per line) or a named set.

    A file is looked up next to the suite, then next to each file it includes.
    """
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict) and "file" in value:
        candidates = [base / str(value["file"]) for base in bases]
        file = next((f for f in candidates if f.exists()), candidates[0])
        _inside(file, [*bases, data_dir(), PACKAGE_CLASSLISTS], f"{where}: list file {file}")
        if not file.exists():
            raise SuiteError(f"{where}: list file {file} does not exist.")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise SuiteError(f"{where}: list file {file} is not a readable text file.") from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    if value == "openai-80":  # CLIP's 80-template ImageNet ensemble
        return list(OPENAI_80)
    raise SuiteError(f"{where}: expected a list, {{file: PATH}} or openai-80, got {value!r}.")


def _inside(path: Path, roots: Sequence[Path], what: str) -> None:
    """Refuse a file outside ``roots``: a shared suite must not read (and print) any file."""
    real = path.resolve()
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        raise SuiteError(f"{what} lies outside the suite's folder, the data folder and "
                         f"oodbench's own suites and class lists; copy it next to the suite.")


def _check_prompt(prompt: str, where: str) -> None:
    """A prompt has exactly one ``{}`` and formats with a class name."""
    try:
        ok = prompt.count("{}") == 1 and prompt.format("x") is not None
    except (IndexError, KeyError, ValueError):
        ok = False
    if not ok:
        raise SuiteError(f"{where}: prompt {prompt!r} must hold exactly one '{{}}' for the class "
                         f"name and no other braces.")


def _check_select(select: Any, where: str) -> None:
    if select is None:
        return
    if not isinstance(select, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in select.values()):
        raise SuiteError(f"{where}: select must map a field to a list of names, e.g. "
                         f"{{category: [flag, star]}}, got {select!r}.")


def _check_keys(mapping: Any, allowed: set[str], where: str) -> None:
    if not isinstance(mapping, dict):
        raise SuiteError(f"{where} must be a mapping, got {repr(mapping)[:80]}.")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(allowed))}.")


def _check_source(source: Any, where: str) -> None:
    _check_keys(source, SOURCE_KEYS | set().union(*SOURCE_TYPE_KEYS.values()), where)
    kind = source.get("type")
    if kind in SOURCE_TYPE_KEYS:
        _check_keys(source, SOURCE_KEYS | SOURCE_TYPE_KEYS[kind], f"{where} ({kind})")
    _check_select(source.get("select"), where)
    count = source.get("expected_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise SuiteError(f"{where}: expected_count must be a positive integer, got {count!r}.")


def _resolve_source(source: dict[str, Any], bases: Sequence[Path], where: str,
                    suite: str) -> dict[str, Any]:
    """Inline ``{file:}`` class_dirs; make ``manifest`` a path (looked up like list files).

    The suite name rides along (``_suite``) with a manifest and with a Hugging Face source, so
    a hint can name the verify / fetch command.
    Neither enters the image fingerprint (sources.CHECK_KEYS): a manifest checks a copy, it
    does not change which images are read. The suite hash sees only the YAML as written.
    """
    dirs = source.get("class_dirs")
    if not (dirs is None or isinstance(dirs, list) or dirs == "sorted"):
        source = {**source, "class_dirs": _named_list(dirs, bases, where)}
    manifest = source.get("manifest")
    if manifest is not None:
        if not isinstance(manifest, str) or not manifest:
            raise SuiteError(f"{where}: manifest must be a file name, got {manifest!r}.")
        # a missing file is not a parse error: `oodbench suites manifest` may be about to
        # create it; a run fails on it with the fix
        candidates = [base / manifest for base in bases]
        found = next((f for f in candidates if f.exists()), candidates[0])
        _inside(found, [*bases, data_dir()], f"{where}: manifest {found}")
        source = {**source, "manifest": str(found.resolve()), "_suite": suite}
    if source.get("type") == "hf":
        source = {**source, "_suite": suite}
    return source


def load_suite(path: Path) -> Suite:
    path = Path(path)
    bases: list[Path] = [path.parent]
    data = _read(path, dirs=bases)
    where = f"suite {path.name}"
    _check_keys(data, TOP_KEYS, where)

    def need(mapping: dict[str, Any], key: str, ctx: str) -> Any:
        if key not in mapping:
            raise SuiteError(f"{where}: missing '{key}' in {ctx}.")
        return mapping[key]

    name = str(data.get("name", path.stem))  # checked below, after the structure
    id_part = need(data, "id", "the top level")
    _check_keys(id_part, ID_KEYS, f"{where} id")
    for part in ("test", "train"):
        if id_part.get(part):
            _check_source(id_part[part], f"{where} id.{part}")
    classes = _named_list(need(id_part, "classes", "id"), bases, f"{where} id.classes")
    if not classes:
        raise SuiteError(f"{where}: id.classes must be a non-empty list of class names.")
    prompts = _named_list(data.get("prompts") or ["a photo of a {}."], bases,
                          f"{where} prompts")
    for p in prompts:
        _check_prompt(p, where)
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise SuiteError(f"{where}: class name(s) {', '.join(map(repr, duplicates[:3]))} appear "
                         f"more than once; each ID class needs its own name.")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SuiteError(f"{where}: version must be a positive integer, got {version!r}.")
    task = data.get("task", "far")
    if task not in TASKS:
        raise SuiteError(f"{where}: task must be one of {TASKS}, got {task!r}.")
    class_type = data.get("class_type", "")
    if not isinstance(class_type, str):
        raise SuiteError(f"{where}: class_type must be a string (e.g. bird), got "
                            f"{class_type!r}.")
    fpr_convention = data.get("fpr_convention")
    if fpr_convention is not None and fpr_convention not in FPR_CONVENTIONS:
        raise SuiteError(f"{where}: fpr_convention must be one of "
                            f"{', '.join(FPR_CONVENTIONS)}, got {fpr_convention!r}.")
    ood_sets = []
    ood_items = need(data, "ood", "the top level")
    if not isinstance(ood_items, list) or not ood_items:
        raise SuiteError(f"{where}: ood must be a non-empty list of OOD sets.")
    for i, item in enumerate(ood_items):
        _check_keys(item, OOD_KEYS, f"{where} ood[{i}]")
        group = item.get("group", "far")
        if group not in GROUPS:
            raise SuiteError(f"{where}: ood[{i}].group must be one of {', '.join(GROUPS)}, "
                                f"got {group!r}.")
        _check_source(need(item, "source", f"ood[{i}]"), f"{where} ood[{i}].source")
        source = _resolve_source(dict(need(item, "source", f"ood[{i}]")), bases, where, name)
        ood_sets.append(OODSet(str(need(item, "name", f"ood[{i}]")), group, source))
    names = [s.name for s in ood_sets]
    if len(set(names)) != len(names):
        raise SuiteError(f"{where}: OOD set names must be unique, got {names}.")
    if name != path.stem:
        raise SuiteError(f"{where}: name {name!r} must match the file name {path.stem!r}.")
    resolved = json.loads(json.dumps(data, default=str))
    return Suite(
        name=name,
        version=version,
        description=str(data.get("description", "")),
        task=task,
        classes=tuple(str(c) for c in classes),
        prompts=tuple(prompts),
        id_name=str(id_part.get("name", name)),
        id_test=_resolve_source(dict(need(id_part, "test", "id")), bases, where, name),
        id_train=_resolve_source(dict(id_part["train"]), bases, where, name)
        if id_part.get("train") else None,
        ood=tuple(ood_sets),
        path=path.resolve(),
        hash=content_key(resolved),
        backbone=data.get("backbone"),
        class_type=class_type.strip(),
        fpr_convention=fpr_convention,
        resolved=resolved,
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())

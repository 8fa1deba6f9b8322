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
from oodbench.data.suite_schema import validate_suite
from oodbench.data.templates import OPENAI_80
from oodbench.errors import SuiteError
from oodbench.paths import data_dir

GROUPS = ("near", "far", "extra")
# the class lists shipped with oodbench (the built-in suites' `file: ../classlists/...`)
PACKAGE_CLASSLISTS = Path(__file__).resolve().parents[1] / "classlists"
PACKAGE_SUITES = Path(__file__).resolve().parents[1] / "suites"  # a suite may include these
TASKS = ("far", "near", "fine-grained")
FPR_CONVENTIONS = ("paper", "openood")


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


def _resolve_source(source: dict[str, Any], bases: Sequence[Path], where: str,
                    suite: str) -> dict[str, Any]:
    """Inline ``{file:}`` class_dirs; make ``manifest`` a path (looked up like list files).

    The suite name rides along (``_suite``) with a manifest and with a Hugging Face source, so
    a hint can name the verify / fetch command.
    Neither enters the image fingerprint (images.CHECK_KEYS): a manifest checks a copy, it
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
    """Read, include, validate (:mod:`oodbench.data.suite_schema`) and resolve a suite file."""
    path = Path(path)
    bases: list[Path] = [path.parent]
    data = _read(path, dirs=bases)
    where = f"suite {path.name}"
    form = validate_suite(data, where)
    name = form.name if form.name is not None else path.stem
    classes = _named_list(form.id.classes, bases, f"{where} id.classes")
    if not classes:
        raise SuiteError(f"{where}: id.classes must be a non-empty list of class names.")
    prompts = _named_list(form.prompts or ["a photo of a {}."], bases, f"{where} prompts")
    for p in prompts:
        _check_prompt(p, where)
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise SuiteError(f"{where}: class name(s) {', '.join(map(repr, duplicates[:3]))} appear "
                         f"more than once; each ID class needs its own name.")
    ood_sets = [OODSet(item.name, item.group,
                       _resolve_source(dict(item.source), bases, where, name))
                for item in form.ood]
    names = [s.name for s in ood_sets]
    if len(set(names)) != len(names):
        raise SuiteError(f"{where}: OOD set names must be unique, got {names}.")
    if name != path.stem:
        raise SuiteError(f"{where}: name {name!r} must match the file name {path.stem!r}.")
    resolved = json.loads(json.dumps(data, default=str))
    return Suite(
        name=name,
        version=form.version,
        description=form.description,
        task=form.task,
        classes=tuple(str(c) for c in classes),
        prompts=tuple(prompts),
        id_name=form.id.name or name,
        id_test=_resolve_source(dict(form.id.test), bases, where, name),
        id_train=_resolve_source(dict(form.id.train), bases, where, name)
        if form.id.train else None,
        ood=tuple(ood_sets),
        path=path.resolve(),
        hash=content_key(resolved),
        backbone=form.backbone,
        class_type=form.class_type.strip(),
        fpr_convention=form.fpr_convention,
        resolved=resolved,
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())

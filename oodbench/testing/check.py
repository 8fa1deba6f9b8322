"""``check_plugin``: validate everything a plugin registers, the way a run would use it.

It registers the plugin in a fresh registry (the built-ins, the other installed plugins and the
toy backbone), then checks every registration of the plugin:

* names: lowercase letters and digits in words joined by one ``-``, ``_`` or ``.``;
* components: a dataclass whose every public field has a declared type that ``--param`` can
  produce, a default, and a default that survives the CLI's coercion; the class (with its
  preset defaults) instantiates;
* scorers: ``prepare`` returns a ``TextHead`` and ``score`` one finite score per image, on the
  toy backbone (:mod:`oodbench.testing.toy`);
* label generators: ``generate`` returns a non-empty ``LabelBank`` of non-empty strings that
  survives export/import and is the same in two fresh runs with the same seed;
* fine-tuners: ``finetune`` (without samples) returns a ``TextHead`` whose features are finite;
* methods: every component resolves and accepts the method's parameters;
* suites: the file parses.

Backbones, synthesizers and generative backends are checked statically (they load models).
A component that cannot run on the toy backbone (it needs a model or data this machine lacks)
is declared with ``skip={"name": "why"}``: its static checks still run.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import inspect
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oodbench.errors import OODBenchError
from oodbench.plugins import PluginInfo, Registration, Registry

NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
PARAM_SCALARS = (int, float, str, bool)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one registration."""

    component: str  # "scorer 'x'", "method 'y'" or "plugin"
    what: str
    fix: str

    def line(self) -> str:
        return f"{self.component}: {self.what}; fix: {self.fix}"


class PluginCheckError(OODBenchError):
    """A plugin failed :func:`check_plugin`; ``problems`` lists every failure."""

    def __init__(self, plugin: str, problems: list[Problem]) -> None:
        self.plugin, self.problems = plugin, problems
        lines = "\n".join(f"  - {p.line()}" for p in problems)
        super().__init__(f"plugin {plugin!r} failed {len(problems)} check(s):\n{lines}")


def check_plugin(plugin: Any, *, skip: Mapping[str, str] | None = None,
                 installed: bool = True) -> None:
    """Validate every registration of ``plugin`` (a module or an object with hook
    implementations); raise :class:`PluginCheckError` listing every problem.

    :param skip: component name -> why it cannot run on the toy backbone (e.g. "needs a
        diffusion model"); its static checks still run. A reason is required.
    :param installed: also load the other installed plugins (entry points), so that a method
        composing another plugin's component resolves and name collisions show.
    """
    name, problems = plugin_problems(plugin, skip=skip, installed=installed)
    if problems:
        raise PluginCheckError(name, problems)


def plugin_problems(plugin: Any, *, skip: Mapping[str, str] | None = None,
                    installed: bool = True) -> tuple[str, list[Problem]]:
    """(the plugin's name, every problem found): what :func:`check_plugin` raises on."""
    from oodbench.testing import probes

    skip = dict(skip or {})
    name, dist = _identity(plugin)
    registry = _registry(plugin, installed)
    info = registry.add_plugin(plugin, name, dist)
    problems = _load_problems(plugin, info)
    mine = [registry.get(kind, n) for kind, n in info.registered]
    problems += _skip_problems(skip, {r.name for r in mine})
    runnable = []
    for reg in mine:
        static = _static_problems(reg, registry)
        problems += static
        if not static and reg.name not in skip:  # run only what instantiates
            runnable.append(reg)
    problems += probes.run_probes(runnable, registry)
    return name, problems


# -- the plugin as a whole ---------------------------------------------------------------------
def _identity(plugin: Any) -> tuple[str, str]:
    """(entry-point name, distribution) of an installed plugin module; else its own name."""
    module = getattr(plugin, "__name__", None) if isinstance(plugin, types.ModuleType) else None
    if module:
        for ep in md.entry_points(group="oodbench"):
            if ep.module == module:
                return ep.name, ep.dist.name if ep.dist else "local"
        return module, "local"
    return type(plugin).__name__, "local"


def _registry(plugin: Any, installed: bool) -> Registry:
    from oodbench.testing.toy import ToyBackbonePlugin

    registry = Registry().load(builtins=True, entry_points=False)
    registry.add_plugin(ToyBackbonePlugin(), "oodbench.testing", "oodbench")
    if not installed:
        return registry
    own = getattr(plugin, "__name__", None)
    for ep in md.entry_points(group="oodbench"):
        if ep.module == own:
            continue
        try:
            other = ep.load()
        except Exception:  # another plugin's import failure is not this plugin's problem
            continue
        registry.add_plugin(other, ep.name, ep.dist.name if ep.dist else "unknown")
    return registry


def _load_problems(plugin: Any, info: PluginInfo) -> list[Problem]:
    problems = []
    if info.error:
        problems.append(Problem("plugin", f"registration failed: {info.error}",
                                "fix the hook named above (a collision: rename the component)"))
    for attr in dir(plugin):
        value = getattr(plugin, attr, None)
        if attr.startswith("register_") and callable(value) and not hasattr(
                value, "oodbench_impl"):
            problems.append(Problem("plugin", f"{attr} is not a hook implementation",
                                    "decorate it with @oodbench.hookimpl"))
    if not info.registered and not info.error:
        problems.append(Problem("plugin", "registers nothing",
                                "implement a register_* hook (oodbench/hookspecs.py) decorated "
                                "with @oodbench.hookimpl"))
    return problems


def _skip_problems(skip: dict[str, str], names: set[str]) -> list[Problem]:
    problems = []
    for name, why in skip.items():
        if name not in names:
            problems.append(Problem("plugin", f"skip names {name!r}, which it does not register",
                                    f"remove {name!r} from skip"))
        elif not str(why).strip():
            problems.append(Problem("plugin", f"skip of {name!r} gives no reason",
                                    "say why it cannot run on the toy backbone"))
    return problems


# -- static checks -----------------------------------------------------------------------------
def label(reg: Registration) -> str:
    return f"{reg.kind.replace('_', ' ')} {reg.name!r}"


def _static_problems(reg: Registration, registry: Registry) -> list[Problem]:
    problems = []
    if not NAME_RE.match(reg.name):
        problems.append(Problem(label(reg), "the name is not well-formed",
                                "use lowercase letters and digits in words joined by one '-', "
                                "e.g. 'my-scorer'"))
    if reg.kind == "suite":
        return problems + _suite_problems(reg)
    if reg.kind == "method":
        return problems + _method_problems(reg, registry)
    return problems + _component_problems(reg)


def _suite_problems(reg: Registration) -> list[Problem]:
    from oodbench.data.suite import load_suite

    try:
        load_suite(Path(reg.obj))
    except OODBenchError as exc:
        return [Problem(label(reg), f"the suite file does not load: {exc}",
                        "fix the file as the message says")]
    return []


def _method_problems(reg: Registration, registry: Registry) -> list[Problem]:
    spec, problems = reg.obj, []
    scorer_cls = None
    for role, kind, ref in spec.components():
        try:
            entry = registry.get(kind, ref.name)
            entry.obj.from_params({**entry.defaults, **ref.params})
        except OODBenchError as exc:
            problems.append(Problem(label(reg), f"its {role} {ref.name!r} does not resolve: "
                                    f"{exc}", "name a registered component and its parameters"))
            continue
        if role == "scorer":
            scorer_cls = entry.obj
    if (scorer_cls is not None and getattr(scorer_cls, "needs_extra_labels", False)
            and spec.label_generator is None):
        problems.append(Problem(label(reg), f"its scorer {spec.scorer.name!r} needs extra labels",
                                "add a label_generator to the method"))
    return problems


def _component_problems(reg: Registration) -> list[Problem]:
    cls = reg.obj
    where = label(reg)
    own = {k: v for k, v in inspect.get_annotations(cls).items()
           if "ClassVar" not in str(v)}
    if own and "__dataclass_fields__" not in cls.__dict__:
        return [Problem(where, f"{cls.__name__} declares {', '.join(own)} but is not a "
                        "dataclass, so they are not parameters",
                        "decorate the class with @dataclasses.dataclass")]
    try:
        fields = cls.param_fields()
    except Exception as exc:
        return [Problem(where, f"its parameter types cannot be resolved ({exc})",
                        "import every type its fields name at module level")]
    problems = []
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    for field_name, annotation in fields.items():
        problem = _param_problem(cls, field_name, annotation, defaults[field_name])
        if problem:
            problems.append(Problem(where, *problem))
    if not str(reg.description or "").strip():
        problems.append(Problem(where, "it has no description",
                                "set the class attribute description = '...' (shown in listings)"))
    if not problems:
        try:
            reg.create()
        except Exception as exc:
            problems.append(Problem(where, f"it does not instantiate with its defaults: {exc}",
                                    "make the defaults valid"))
    return problems


def _param_problem(cls: type, name: str, annotation: Any,
                   field: dataclasses.Field[Any]) -> tuple[str, str] | None:
    from oodbench.components import coerce

    if not _supported(annotation):
        return (f"parameter {name!r} has type {annotation!r}, which --param cannot produce",
                "use int, float, str, bool, a Literal, list[...], tuple[...], dict or "
                "Optional of these")
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return (f"parameter {name!r} has no default", f"give {name} a default value")
    where = f"{cls.__name__}.{name}"
    try:
        if coerce(value, annotation, where) != value:
            raise ValueError(f"the default {value!r} changes when coerced")
        typed = _cli_form(value)
        if coerce(typed, annotation, where) != coerce(value, annotation, where):
            raise ValueError(f"--param {name}={typed} does not give back the default")
    except (OODBenchError, ValueError) as exc:
        return (f"parameter {name!r}: {exc}", "make the default match the declared type")
    return None


def _supported(annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in PARAM_SCALARS or annotation is Any or annotation is dict:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(a is type(None) or _supported(a) for a in args)
    if origin is typing.Literal:
        return all(isinstance(a, str | int | float | bool) for a in args)
    if origin in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        return all(_supported(a) for a in inner)
    return origin is dict


def _cli_form(value: Any) -> str:
    """What a user types after ``--param name=`` to get ``value``."""
    if isinstance(value, list | tuple | dict):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return "none" if value is None else str(value)

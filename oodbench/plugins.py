"""The plugin manager: built-in plugins plus setuptools entry points of group ``oodbench``.

Every registration goes through one core-owned ``register`` callback per hook, which checks the
type, the name and collisions, and records which plugin (and distribution) registered what.
Loading a plugin is all or nothing: a plugin whose import fails, which implements a misspelt
hook, registers something invalid or registers a name another plugin already holds is refused
whole, so none of its components (and none of its methods, which would otherwise run another
plugin's component of the same name) stay registered. The refusal is recorded (``failures()``,
``failure_line()``, ``oodbench plugins``) and never fatal to the other plugins; looking up a name
the refused plugin offered says which plugin it came from and why it is not loaded.
``OODBENCH_LOAD_PLUGINS`` (comma-separated entry-point names; empty = none) narrows which
third-party plugins load, to recover from a broken one.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from oodbench import hookspecs
from oodbench.errors import PluginError, UnknownNameError

DEFAULT_PLUGINS: tuple[str, ...] = (
    "oodbench.baselines.plugin",
    "oodbench.backbones.plugin",
    "oodbench.data.plugin",
    "oodbench.labels.plugin",
    "oodbench.generative.llm_plugin",
    "oodbench.generative.plugin",
)

KIND_PLURAL = {
    "backbone": "backbones",
    "suite": "suites",
    "label_generator": "label generators",
    "synthesizer": "synthesizers",
    "finetuner": "fine-tuners",
    "scorer": "scorers",
    "method": "methods",
    "text_generator": "text generators",
    "image_describer": "image describers",
    "image_generator": "image generators",
    "image_classifier": "image classifiers",
}


class PluginNotLoadedError(PluginError):
    """A name that only a refused plugin offers (exit code 2, like an unknown name)."""

    exit_code = 2


@dataclass
class Registration:
    kind: str
    name: str
    obj: Any  # a component class, a MethodSpec, or a suite file Path
    plugin: str
    distribution: str
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def create(self, params: dict[str, Any] | None = None) -> Any:
        """Instantiate a component class with its preset defaults and ``params`` on top."""
        return self.obj.from_params({**self.defaults, **(params or {})})


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool
    registered: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None  # why the plugin was refused (None: loaded)
    offered: list[tuple[str, str]] = field(default_factory=list)  # what a refused one offered
    traceback: str = ""  # of the first failure, for ``--debug``
    entry_point: bool = False  # loaded through the entry point (OODBENCH_LOAD_PLUGINS selects)


class Registry:
    """All registered components of one process (tests build a fresh one each)."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("oodbench")
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[str, dict[str, Registration]] = {k: {} for k in KIND_PLURAL}
        self.refused: dict[str, dict[str, PluginInfo]] = {k: {} for k in KIND_PLURAL}
        self.plugins: list[PluginInfo] = []

    # -- loading -----------------------------------------------------------------------------
    def load(self, builtins: bool = True, entry_points: bool = True) -> Registry:
        if builtins:
            for module_name in DEFAULT_PLUGINS:
                module = importlib.import_module(module_name)
                self._register_plugin(module, module_name, "oodbench", _version(), builtin=True)
        if entry_points:
            for ep in _entry_points(os.environ.get("OODBENCH_LOAD_PLUGINS")):
                dist = ep.dist.name if ep.dist else "unknown"
                version = ep.dist.version if ep.dist else "?"
                try:
                    plugin = ep.load()
                except Exception as exc:  # any import-time failure of a third-party plugin
                    reason = f"import failed: {_one_line(exc)}".rstrip(".")
                    self.plugins.append(PluginInfo(ep.name, dist, version, False, error=reason,
                                                   traceback=traceback.format_exc(),
                                                   entry_point=True))
                    continue
                self._register_plugin(plugin, ep.name, dist, version, builtin=False,
                                      entry_point=True)
        return self

    def add_plugin(self, plugin: Any, name: str, distribution: str = "local") -> PluginInfo:
        """Register a plugin object or module directly (tests, ``--plugin`` files)."""
        return self._register_plugin(plugin, name, distribution, "0", builtin=False)

    def _register_plugin(
        self, plugin: ModuleType | Any, name: str, dist: str, version: str, builtin: bool,
        entry_point: bool = False,
    ) -> PluginInfo:
        info = PluginInfo(name, dist, version, builtin, entry_point=entry_point)
        self.plugins.append(info)
        try:
            if self.pm.is_registered(plugin) or self.pm.has_plugin(name):
                raise PluginError(f"plugin {name!r} is registered twice")
            self.pm.register(plugin, name=name)
            _check_hook_names(self.pm, plugin, name)
        except Exception as exc:
            self._refuse(info, plugin, [_one_line(exc)], traceback.format_exc())
            return info
        offered, problems, trace = self._collect(plugin, info)
        info.offered = [(reg.kind, reg.name) for reg in offered]
        problems += self._collisions(offered, info)
        if problems:
            self._refuse(info, plugin, problems, trace)
        else:
            for reg in offered:
                self.entries[reg.kind][reg.name] = reg
            info.registered, info.offered = info.offered, []
        return info

    def _collect(self, plugin: Any, info: PluginInfo) -> tuple[list[Registration], list[str], str]:
        """Call each of the plugin's hooks; what it registers, what went wrong, the traceback."""
        offered: list[Registration] = []
        problems: list[str] = []
        trace = ""
        for hook_name, kind in hookspecs.HOOK_KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    impl.function(register=_registrar(kind, info, offered))
                except Exception as exc:
                    problems.append(f"{hook_name} failed: {_one_line(exc)}")
                    trace = trace or traceback.format_exc()
        return offered, problems, trace

    def _collisions(self, offered: list[Registration], info: PluginInfo) -> list[str]:
        problems, seen = [], set()
        for reg in offered:
            existing = self.entries[reg.kind].get(reg.name)
            if existing is not None:
                problems.append(
                    f"{reg.kind} {reg.name!r} is already registered by plugin "
                    f"{existing.plugin!r} (distribution {existing.distribution!r}); "
                    f"rename it in distribution {info.distribution!r}")
            elif (reg.kind, reg.name) in seen:
                problems.append(f"it registers {reg.kind} {reg.name!r} twice")
            seen.add((reg.kind, reg.name))
        return problems

    def _refuse(self, info: PluginInfo, plugin: Any, problems: list[str], trace: str) -> None:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        info.error, info.traceback = problems[0].rstrip(".") + more, trace
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)
        if info.builtin:
            raise PluginError(f"built-in plugin {info.name} is broken: {info.error}")
        for kind, name in info.offered:
            self.refused[kind].setdefault(name, info)

    # -- lookup ------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Registration:
        entry = self.entries[kind].get(name)
        if entry is not None:
            return entry
        label = kind.replace("_", " ")
        info = self.refused[kind].get(name)
        if info is not None:
            raise PluginNotLoadedError(
                f"{label} {name!r} comes from plugin {info.name!r} (distribution "
                f"{info.distribution!r}), which was not loaded: {info.error}. "
                f"{self.fix_hint(info)}.")
        error = UnknownNameError(label, name, self.entries[kind])
        unknown = [p for p in self.failures() if not p.offered]  # refused before registering
        if unknown:
            listed = "; ".join(f"{p.name!r} ({p.error})" for p in unknown)
            error.args = (f"{error} Plugins that failed to load (one may offer it): {listed}.",)
        raise error

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None) -> Any:
        return self.get(kind, name).create(params)

    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]

    # -- reporting ---------------------------------------------------------------------------
    def fix_hint(self, info: PluginInfo) -> str:
        """How to get rid of a refused plugin's warning: fix it, or leave it out."""
        if not info.entry_point:
            return f"Fix plugin {info.name!r}"
        others = [p.name for p in self.plugins if p.entry_point and not p.error]
        return (f"Fix or uninstall distribution {info.distribution!r}, or leave it out with "
                f"OODBENCH_LOAD_PLUGINS={','.join(others)!r}")

    def failure_line(self, info: PluginInfo) -> str:
        """One line naming a refused plugin, the reason and the fix."""
        offered = f" (none of its {len(info.offered)} components)" if info.offered else ""
        debug = "; --debug shows the traceback" if info.traceback else ""
        return (f"plugin {info.name!r} from distribution {info.distribution!r} {info.version} "
                f"was not loaded{offered}: {info.error}. {self.fix_hint(info)}{debug}.")


def _registrar(kind: str, info: PluginInfo, offered: list[Registration]) -> Callable[..., None]:
    def register(obj: Any, name: str | None = None, defaults: dict[str, Any] | None = None,
                 description: str | None = None) -> None:
        offered.extend(_make_registrations(kind, obj, name, defaults, description, info))

    return register
def _make_registrations(
    kind: str, obj: Any, name: str | None, defaults: dict[str, Any] | None,
    description: str | None, info: PluginInfo,
) -> Iterable[Registration]:
    from oodbench.method import MethodSpec

    if kind == "suite":
        path = Path(obj)
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            if file.name.startswith("_"):  # shared bases for `include:`, not suites
                continue
            yield Registration(kind, file.stem, file, info.name, info.distribution)
        return
    if kind == "method":
        if not isinstance(obj, MethodSpec):
            raise PluginError(f"register_methods expects a MethodSpec, got {type(obj).__name__}")
        yield Registration(kind, name or obj.name, obj, info.name, info.distribution,
                           description=description or obj.description)
        return
    base = _base_class(kind)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginError(f"register_{kind}s expects a subclass of {base.__name__}, got {obj!r}")
    reg_name = name or getattr(obj, "name", "")
    if not reg_name:
        raise PluginError(f"{obj.__name__} has no name; set the class attribute `name`")
    yield Registration(kind, reg_name, obj, info.name, info.distribution, dict(defaults or {}),
                       description or str(getattr(obj, "description", "")))


def _base_class(kind: str) -> type:
    from oodbench import interfaces
    from oodbench.backbones.base import Backbone

    bases: dict[str, type] = {
        "backbone": Backbone,
        "scorer": interfaces.Scorer,
        "label_generator": interfaces.LabelGenerator,
        "synthesizer": interfaces.Synthesizer,
        "finetuner": interfaces.FineTuner,
    }
    if kind in bases:
        return bases[kind]
    from oodbench import generative

    return {
        "text_generator": generative.TextGenerator,
        "image_describer": generative.ImageDescriber,
        "image_generator": generative.ImageGenerator,
        "image_classifier": generative.ImageClassifier,
    }[kind]


def _check_hook_names(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """A misspelt hook would be silently ignored: refuse it instead."""
    for attr in dir(plugin):
        if pm.parse_hookimpl_opts(plugin, attr) is None:
            continue
        if attr not in hookspecs.HOOK_KINDS:
            close = [h for h in hookspecs.HOOK_KINDS if h.startswith(attr[:12])]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise PluginError(f"plugin {name!r} implements unknown hook {attr!r}{hint}")


def _entry_points(selection: str | None) -> list[md.EntryPoint]:
    """The entry points to load, by name: the same plugin wins a collision on every machine."""
    eps = sorted(md.entry_points(group="oodbench"), key=lambda ep: (ep.name, ep.value))
    if selection is None:
        return eps
    wanted = {s.strip() for s in selection.split(",") if s.strip()}
    unknown = sorted(wanted - {ep.name for ep in eps})
    if unknown:  # a typo would otherwise load nothing, silently
        available = ", ".join(sorted(ep.name for ep in eps)) or "none installed"
        print(f"warning: OODBENCH_LOAD_PLUGINS names no installed plugin {', '.join(unknown)}; "
              f"installed: {available}.", file=sys.stderr)
    return [ep for ep in eps if ep.name in wanted]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, PluginError) else text


def _version() -> str:
    from oodbench import __version__

    return __version__


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry().load()
    return _REGISTRY


def reset_registry() -> None:
    global _REGISTRY
    _REGISTRY = None

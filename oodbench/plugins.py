"""The plugin manager: built-in plugins plus setuptools entry points of group ``oodbench``.

Every registration goes through one core-owned ``register`` callback per hook, which checks the
type, the name and collisions, and records which plugin (and distribution) registered what. A
broken third-party plugin is recorded and reported (``oodbench plugins``), never fatal to the
others. ``OODBENCH_LOAD_PLUGINS`` (comma-separated entry-point names; empty = none) narrows which
third-party plugins load, to recover from a broken one.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
from collections.abc import Iterable
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
    error: str | None = None


class Registry:
    """All registered components of one process (tests build a fresh one each)."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("oodbench")
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[str, dict[str, Registration]] = {k: {} for k in KIND_PLURAL}
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
                    self.plugins.append(PluginInfo(ep.name, dist, version, False,
                                                   error=f"import failed: {_one_line(exc)}"))
                    continue
                self._register_plugin(plugin, ep.name, dist, version, builtin=False)
        return self

    def add_plugin(self, plugin: Any, name: str, distribution: str = "local") -> PluginInfo:
        """Register a plugin object or module directly (tests, ``--plugin`` files)."""
        return self._register_plugin(plugin, name, distribution, "0", builtin=False)

    def _register_plugin(
        self, plugin: ModuleType | Any, name: str, dist: str, version: str, builtin: bool
    ) -> PluginInfo:
        info = PluginInfo(name, dist, version, builtin)
        self.plugins.append(info)
        try:
            if self.pm.is_registered(plugin) or self.pm.has_plugin(name):
                raise PluginError(f"plugin {name!r} is registered twice")
            self.pm.register(plugin, name=name)
            _check_hook_names(self.pm, plugin, name)
        except Exception as exc:
            info.error = _one_line(exc)
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            return info
        for hook_name, kind in hookspecs.HOOK_KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    impl.function(register=self._registrar(kind, info))
                except Exception as exc:
                    info.error = f"{hook_name} failed: {_one_line(exc)}"
        if info.error and not builtin:
            print(f"oodbench: plugin {name!r} from distribution {dist!r}: {info.error}",
                  file=sys.stderr)
        if info.error and builtin:
            raise PluginError(f"built-in plugin {name} is broken: {info.error}")
        return info

    def _registrar(self, kind: str, info: PluginInfo):
        def register(obj: Any, name: str | None = None, defaults: dict[str, Any] | None = None,
                     description: str | None = None) -> None:
            for reg in _make_registrations(kind, obj, name, defaults, description, info):
                existing = self.entries[kind].get(reg.name)
                if existing is not None:
                    raise PluginError(
                        f"{kind} {reg.name!r} is already registered by plugin "
                        f"{existing.plugin!r} (distribution {existing.distribution!r}); "
                        f"rename it in distribution {info.distribution!r}"
                    )
                self.entries[kind][reg.name] = reg
                info.registered.append((kind, reg.name))

        return register

    # -- lookup ------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Registration:
        try:
            return self.entries[kind][name]
        except KeyError:
            raise UnknownNameError(kind.replace("_", " "), name, self.entries[kind]) from None

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None) -> Any:
        return self.get(kind, name).create(params)

    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]


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
                       description or obj.description)


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
    eps = list(md.entry_points(group="oodbench"))
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

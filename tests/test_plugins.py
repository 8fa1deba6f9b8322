from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import oodbench
from oodbench import hookspecs
from oodbench.errors import PluginError, UnknownNameError
from oodbench.interfaces import Scorer
from oodbench.plugins import Registry

REPO = Path(__file__).resolve().parents[1]


def _install(target: Path, project: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(project)],
        check=True, capture_output=True,
    )


@pytest.fixture(scope="session")
def installed_plugins(tmp_path_factory):
    """The example plugin and a broken one, installed as real distributions (own site dir)."""
    site = tmp_path_factory.mktemp("site")
    _install(site, REPO / "plugins" / "example")
    _install(site, REPO / "tests" / "broken_plugin_dist")
    return site


@pytest.fixture
def with_site(installed_plugins, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_plugins))
    monkeypatch.delenv("OODBENCH_LOAD_PLUGINS", raising=False)
    return installed_plugins


def test_every_hook_is_documented_and_mapped():
    specs = {n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if n.startswith("register_")}
    assert specs == set(hookspecs.HOOK_KINDS)
    for name in specs:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and ":param register:" in doc, name
        assert list(inspect.signature(getattr(hookspecs, name)).parameters) == ["register"]


def test_builtins_register_baselines():
    reg = Registry().load(entry_points=False)
    assert {"mcm", "msp", "maxlogit", "energy"} <= set(reg.names("method"))
    assert reg.get("scorer", "mcm").distribution == "oodbench"
    assert reg.create("scorer", "mcm", {"temperature": "0.5"}).temperature == 0.5


def test_entry_point_plugin_loads_and_broken_one_is_reported(with_site):
    reg = Registry().load()
    assert "top2-margin" in reg.names("method")
    info = {p.name: p for p in reg.plugins}
    assert info["example"].distribution == "oodbench-example"
    assert ("scorer", "top2-margin") in info["example"].registered
    assert info["broken"].error and "broken on purpose" in info["broken"].error
    assert info["broken"].distribution == "oodbench-broken-plugin"


def test_load_plugins_env_narrows_selection(with_site, monkeypatch):
    monkeypatch.setenv("OODBENCH_LOAD_PLUGINS", "example")
    reg = Registry().load()
    assert "broken" not in {p.name for p in reg.plugins}
    assert "top2-margin" in reg.names("method")


def test_duplicate_name_names_both_distributions():
    class Dup(Scorer):
        name = "mcm"

        def score(self, image_features, head):
            return image_features[:, 0].numpy()

    class Plugin:
        @oodbench.hookimpl
        def register_scorers(self, register):
            register(Dup)

    reg = Registry().load(entry_points=False)
    info = reg.add_plugin(Plugin(), "dup", distribution="dup-dist")
    assert "already registered" in info.error and "oodbench" in info.error
    assert "dup-dist" in info.error
    assert reg.get("scorer", "mcm").distribution == "oodbench"  # the first one stays


def test_misspelt_hook_is_refused():
    class Plugin:
        @oodbench.hookimpl
        def register_scorer(self, register):  # missing the final "s"
            raise AssertionError("must not be called")

    reg = Registry().load(entry_points=False)
    info = reg.add_plugin(Plugin(), "typo")
    assert "unknown hook 'register_scorer'" in info.error


def test_wrong_type_is_refused():
    class Plugin:
        @oodbench.hookimpl
        def register_scorers(self, register):
            register(object)

    info = Registry().load(entry_points=False).add_plugin(Plugin(), "bad")
    assert "subclass of Scorer" in info.error


def test_unknown_name_suggests_close_match():
    reg = Registry().load(entry_points=False)
    with pytest.raises(UnknownNameError, match="Did you mean 'mcm'"):
        reg.get("method", "mcn")


def test_builtin_plugin_failure_is_fatal(monkeypatch):
    monkeypatch.setattr("oodbench.plugins.DEFAULT_PLUGINS", ("tests.test_plugins",))
    with pytest.raises(PluginError, match="built-in plugin"):
        Registry().load(entry_points=False)


@oodbench.hookimpl
def register_scorers(register):  # used by test_builtin_plugin_failure_is_fatal
    register(42)


def test_the_public_api_is_listed_and_importable_without_torch():
    import subprocess
    import sys

    code = ("import sys, oodbench; assert 'torch' not in sys.modules; "
            "names = [n for n in oodbench.__all__ if not n.startswith('_')]; "
            "[getattr(oodbench, n) for n in names]; print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len([n for n in __import__("oodbench").__all__ if n[0] != "_"])
    import oodbench

    assert {"MethodEnv", "LabelBank", "TextHead", "Scorer", "MethodSpec"} <= set(oodbench.__all__)
    from importlib.resources import files

    assert files("oodbench").joinpath("py.typed").is_file()

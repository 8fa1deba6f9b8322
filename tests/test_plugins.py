from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import oodbench
from oodbench import ComponentRef, MethodSpec, Scorer, hookspecs
from oodbench.errors import PluginError, UnknownNameError
from oodbench.plugins import PluginNotLoadedError, Registry

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


# -- all or nothing: a plugin with a collision or a failure is refused whole -------------------
def _twin_plugin(method: str, sign: float, scorer: str = "twin") -> Any:
    """A throwaway third-party plugin: scorer ``scorer`` (max cosine times ``sign``) and a method
    using it."""

    @dataclasses.dataclass
    class Twin(Scorer):
        name = scorer
        description = f"max cosine times {sign}"

        def score(self, image_features, head):
            cos = (image_features.double() @ head.id_features.double().T).max(dim=1).values
            return (sign * cos).numpy()

    class Plugin:
        @oodbench.hookimpl
        def register_scorers(self, register):
            register(Twin)

        @oodbench.hookimpl
        def register_methods(self, register):
            register(MethodSpec(name=method, scorer=ComponentRef(scorer)))

    return Plugin()


def test_a_colliding_plugin_is_refused_whole():
    reg = Registry().load(entry_points=False)
    first = reg.add_plugin(_twin_plugin("a-method", 1.0), "twin-a", distribution="twin-a")
    second = reg.add_plugin(_twin_plugin("b-method", -1.0), "twin-b", distribution="twin-b")
    assert first.error is None and ("method", "a-method") in first.registered
    assert "scorer 'twin' is already registered by plugin 'twin-a'" in second.error
    assert second.registered == [] and set(second.offered) == {("scorer", "twin"),
                                                               ("method", "b-method")}
    assert "b-method" not in reg.names("method")  # never runs twin-a's scorer
    assert reg.get("scorer", "twin").plugin == "twin-a"
    with pytest.raises(PluginNotLoadedError) as caught:
        reg.get("method", "b-method")
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    assert str(caught.value).startswith("method 'b-method' comes from plugin 'twin-b' "
                                        "(distribution 'twin-b'), which was not loaded: scorer "
                                        "'twin' is already registered by plugin 'twin-a'")


def test_a_plugin_colliding_with_a_builtin_keeps_no_method():
    """Its method would otherwise silently run the built-in `mcm` scorer."""
    reg = Registry().load(entry_points=False)
    info = reg.add_plugin(_twin_plugin("my-mcm", -1.0, scorer="mcm"), "mine")
    assert "scorer 'mcm' is already registered by plugin 'oodbench.baselines.plugin'" in info.error
    assert "my-mcm" not in reg.names("method")
    with pytest.raises(PluginNotLoadedError, match="comes from plugin 'mine'"):
        reg.get("method", "my-mcm")
    assert reg.get("scorer", "mcm").distribution == "oodbench"


def test_a_failing_hook_refuses_what_the_other_hooks_registered():
    class Plugin:
        @oodbench.hookimpl
        def register_scorers(self, register):
            register(_twin_plugin("unused", 1.0).__class__)  # not a Scorer: refused below

        @oodbench.hookimpl
        def register_label_generators(self, register):
            raise ImportError("No module named 'missing_dependency'")

    reg = Registry().load(entry_points=False)
    info = reg.add_plugin(Plugin(), "half")
    assert info.error.startswith("register_label_generators failed: ImportError: No module "
                                 "named 'missing_dependency' (and 1 more problem(s))")
    assert info.registered == [] and "ImportError" in info.traceback
    assert reg.failure_line(info).startswith("plugin 'half' from distribution 'local' 0 was not "
                                             "loaded: register_label_generators failed")


TWIN_MODULE = '''"""Throwaway plugin {name}: scorer 'twin' and method '{method}'."""
import dataclasses

import oodbench
from oodbench import ComponentRef, MethodSpec, Scorer
from tests.toy import ToyColourBackbone


@dataclasses.dataclass
class Twin(Scorer):
    name = "twin"
    description = "max cosine times {sign}"

    def score(self, image_features, head):
        cos = (image_features.double() @ head.id_features.double().T).max(dim=1).values
        return ({sign} * cos).numpy()


@oodbench.hookimpl
def register_scorers(register):
    register(Twin)


@oodbench.hookimpl
def register_methods(register):
    register(MethodSpec(name="{method}", scorer=ComponentRef("twin")))
'''
TOY_BACKBONE_HOOK = '''

@oodbench.hookimpl
def register_backbones(register):
    register(ToyColourBackbone)
'''


def _fake_distribution(site: Path, name: str, module: str, source: str) -> None:
    """A distribution as pip leaves it: the module and a dist-info with its entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[oodbench]\n{name} = {module}\n")


@pytest.fixture
def twin_site(tmp_path, monkeypatch):
    """Two installed third-party plugins registering the same scorer name, and one that fails
    at import; twin-a also registers the toy backbone so that its method can run."""
    site = tmp_path / "site"
    site.mkdir()
    _fake_distribution(site, "twin-a", "twin_a_plugin",
                       TWIN_MODULE.format(name="twin-a", sign=1.0, method="a-method")
                       + TOY_BACKBONE_HOOK)
    _fake_distribution(site, "twin-b", "twin_b_plugin",
                       TWIN_MODULE.format(name="twin-b", sign=-1.0, method="b-method"))
    _fake_distribution(site, "twin-broken", "twin_broken_plugin",
                       "import oodbench_missing_dependency\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("OODBENCH_LOAD_PLUGINS", "twin-a,twin-b,twin-broken")
    return site


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: plugin")]


def test_refused_plugins_are_named_on_every_command_and_their_method_is_not_run(
        twin_site, colour_suite, tmp_path):
    from typer.testing import CliRunner

    from oodbench.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["methods"])
    assert listed.exit_code == 0, listed.output
    assert "a-method" in listed.stdout and "b-method" not in listed.stdout
    collision, broken = _warnings(listed.stderr)
    assert collision == (
        "warning: plugin 'twin-b' from distribution 'twin-b' 1.0 was not loaded (none of its 2 "
        "components): scorer 'twin' is already registered by plugin 'twin-a' (distribution "
        "'twin-a'); rename it in distribution 'twin-b'. Fix or uninstall distribution 'twin-b', "
        "or leave it out with OODBENCH_LOAD_PLUGINS='twin-a'.")
    assert broken.startswith("warning: plugin 'twin-broken' from distribution 'twin-broken' 1.0 "
                             "was not loaded: import failed: ModuleNotFoundError: No module "
                             "named 'oodbench_missing_dependency'")
    assert broken.endswith("--debug shows the traceback.") and "Traceback" not in listed.stderr

    out = tmp_path / "out"
    base = ["-s", str(colour_suite), "--device", "cpu", "--workers", "0", "-o", str(out),
            "--cache-dir", str(tmp_path / "c")]
    refused = runner.invoke(app, ["run", "-m", "b-method", *base])
    assert refused.exit_code == 2 and len(_warnings(refused.stderr)) == 2
    (error,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: method 'b-method' comes from plugin 'twin-b' (distribution "
                            "'twin-b'), which was not loaded: scorer 'twin' is already "
                            "registered by plugin 'twin-a'")
    assert not out.exists()

    ran = runner.invoke(app, ["run", "-m", "a-method", "--json", *base])
    assert ran.exit_code == 0, ran.output
    record = json.loads(ran.stdout)
    assert record["groups"]["far"]["auroc"] > 0.9  # twin-a's scorer; twin-b's would be < 0.1
    assert len(_warnings(ran.stderr)) == 2


def test_a_plugin_that_failed_to_import_is_named_by_unknown_names_and_debug(twin_site):
    from typer.testing import CliRunner

    from oodbench.cli import app

    runner = CliRunner()
    unknown = runner.invoke(app, ["methods", "c-method"])
    assert unknown.exit_code == 2
    assert ("Plugins that failed to load (one may offer it): 'twin-broken' (import failed: "
            "ModuleNotFoundError") in unknown.stderr
    debug = runner.invoke(app, ["--debug", "plugins", "--json"])
    assert debug.exit_code == 0
    assert "Traceback" in debug.stderr and "import oodbench_missing_dependency" in debug.stderr
    rows = {row["plugin"]: row for row in json.loads(debug.stdout)}
    assert rows["twin-b"]["registers"] == []
    assert set(rows["twin-b"]["refused"]) == {"scorer:twin", "method:b-method"}
    assert rows["twin-a"]["error"] is None and "method:a-method" in rows["twin-a"]["registers"]
    assert rows["twin-broken"]["error"].startswith("import failed")

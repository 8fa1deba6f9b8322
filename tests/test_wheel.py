"""The built wheels: the core ships the suites and class lists and no mini-world files, the
mini world's wheel ships its weights; the installed packages (not the source tree) find them;
git_revision is the commit in a checkout and null from a wheel.

The install mechanism is the one `.ci/run` uses: build each wheel from a copy of its package
sources (no stale build/ of the checkout), install both with --no-deps into a fresh venv whose
site-packages has one .pth line naming the dependencies' site-packages (.venv's: torch is not
reinstalled). That line appends the folder to sys.path after the venv's own site-packages, so
the wheels' packages are the ones imported, and .venv's own .pth files (the editable finders)
are not run. Every command runs from a temporary folder outside the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from oodbench.data.suite import load_suite
from oodbench.paths import REPO_ROOT
from oodbench.results import git_revision

SUITES = REPO_ROOT / "oodbench" / "suites"
CLASSLISTS = REPO_ROOT / "oodbench" / "classlists"
MINI = REPO_ROOT / "plugins" / "mini"


def _run(cmd: list[str], cwd: Path, **env: str) -> str:
    full_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    full_env.update(env)
    done = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _build(root: Path, package: str, work: Path) -> Path:
    """The wheel of the distribution at ``root`` (its pyproject.toml, README.md, ``package``)."""
    src = work / "src" / package
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, src / name)
    shutil.copytree(root / package, src / package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # --no-isolation: the build tools already in this environment, no index needed;
    # --skip-dependency-check: setuptools >= 70.1 builds wheels without the `wheel` package
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check",
          "-o", str(work / "dist"), str(src)], cwd=work)
    (built,) = (work / "dist").glob(f"{package}-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build")
    return _build(REPO_ROOT, "oodbench", tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def mini_wheel(wheel: Path) -> Path:
    return _build(MINI, "oodbench_mini", wheel.parent.parent)


@pytest.fixture(scope="module")
def wheel_venv(wheel: Path, mini_wheel: Path) -> tuple[Path, Path]:
    """(python of a fresh venv with both wheels installed, a folder outside the checkout)."""
    work = wheel.parent.parent
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=work).strip())
    (site / "_oodbench_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
          "--no-index", str(wheel), str(mini_wheel)], cwd=work)
    outside = work / "cwd"
    outside.mkdir()
    return python, outside


def test_wheel_ships_every_suite_and_class_list(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for folder, pattern in ((SUITES, "*.yaml"), (CLASSLISTS, "*.txt")):
            shipped = sorted(folder.glob(pattern))
            assert shipped, folder
            for file in shipped:
                member = f"oodbench/{folder.name}/{file.name}"
                assert member in names, f"{member} is not in {wheel.name}"
                assert zf.read(member) == file.read_bytes(), member
    # the old location is gone: one copy, inside the package
    assert not (REPO_ROOT / "benchmarks" / "suites").exists()
    assert not (REPO_ROOT / "benchmarks" / "classlists").exists()


def test_mini_world_is_its_own_wheel(wheel: Path, mini_wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        core = [n for n in zf.namelist() if "mini" in n.split("/")[0] or n.endswith(
            ".safetensors")]
    assert core == [], f"{wheel.name} ships mini-world files: {core}"
    with zipfile.ZipFile(mini_wheel) as zf:
        names = set(zf.namelist())
        for folder in ("weights", "diffusion_weights"):
            shipped = sorted((MINI / "oodbench_mini" / folder).iterdir())
            assert shipped, folder
            for file in shipped:
                member = f"oodbench_mini/{folder}/{file.name}"
                assert member in names and zf.read(member) == file.read_bytes(), member
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "mini = oodbench_mini.plugin" in zf.read(entry_points).decode()
    assert not any(n.startswith("tools/") for n in names)  # training tools stay in the repo


def test_installed_mini_wheel_registers_its_components(wheel_venv: tuple[Path, Path]) -> None:
    python, outside = wheel_venv
    probe = (
        "import json, oodbench_mini\n"
        "from oodbench.plugins import Registry\n"
        "reg = Registry().load()\n"
        "print(json.dumps({'file': oodbench_mini.__file__, 'failures': len(reg.failures()),\n"
        "                  'backbone': reg.get('backbone', 'mini').distribution,\n"
        "                  'generator': reg.get('image_generator', 'mini-diffusion')"
        ".distribution}))\n"
    )
    info = json.loads(_run([str(python), "-c", probe], cwd=outside,
                           OODBENCH_LOAD_PLUGINS="mini", OODBENCH_SUITES_PATH=""))
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=outside).strip())
    assert Path(info["file"]).is_relative_to(site), info["file"]  # the wheel's code runs
    assert info == {**info, "failures": 0, "backbone": "oodbench-mini",
                    "generator": "oodbench-mini"}


def test_installed_wheel_lists_and_loads_suites(wheel_venv: tuple[Path, Path]) -> None:
    python, outside = wheel_venv
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=outside).strip())
    probe = (
        "import json, oodbench\n"
        "from oodbench.data.plugin import suite_dirs\n"
        "from oodbench.data.suite import load_suite\n"
        "from oodbench.results import git_revision\n"
        "(d,) = suite_dirs()\n"
        "hashes = {f.stem: load_suite(f).hash for f in sorted(d.glob('*.yaml'))\n"
        "          if not f.name.startswith('_')}\n"
        "print(json.dumps({'file': oodbench.__file__, 'suites': str(d),\n"
        "                  'git_revision': git_revision(), 'hashes': hashes}))\n"
    )
    # OODBENCH_SUITES_PATH unset: only the package's own suites; no plugins (theirs are
    # editable installs in the dependencies' environment, not part of this wheel)
    env = {"OODBENCH_LOAD_PLUGINS": "", "OODBENCH_SUITES_PATH": ""}
    info = json.loads(_run([str(python), "-c", probe], cwd=outside, **env))
    assert Path(info["file"]).is_relative_to(site), info["file"]  # the wheel's code runs
    assert Path(info["suites"]) == site / "oodbench" / "suites"
    assert info["git_revision"] is None  # no checkout around an installed wheel; no crash
    # the same suites, byte for byte the same content hash as in the checkout
    expected = {f.stem: load_suite(f).hash for f in sorted(SUITES.glob("*.yaml"))
                if not f.name.startswith("_")}
    assert info["hashes"] == expected

    listed = _run([str(python.parent / "oodbench"), "suites"], cwd=outside,
                  COLUMNS="200", **env)
    for name in expected:
        assert re.search(rf"│ {re.escape(name)}\s", listed), f"{name} not listed:\n{listed}"


def test_git_revision_in_the_checkout() -> None:
    if not (REPO_ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    rev = git_revision()
    assert rev is not None and re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", rev), rev


def test_git_revision_without_a_checkout(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    from oodbench import results

    # an installed wheel: the package's parent is site-packages
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)
    assert results.git_revision() is None
    # a .git beside it but git cannot read it (or is missing): still no exception
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert results.git_revision() is None
    monkeypatch.setenv("PATH", str(tmp_path))
    assert results.git_revision() is None

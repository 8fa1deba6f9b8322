"""`oodbench data fetch SUITE`: only the splits a suite reads come from the hub, runs then read
them with no network; sets to download by hand get their source, command and layout; `suites
show` never downloads (nor even connects)."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

import oodbench.cli as cli
import oodbench.plugins as plugins_module
from oodbench.cli.data import fuller_hint
from oodbench.data.sources import hf_record_path, resolve_source
from oodbench.data.suite import load_suite
from oodbench.paths import REPO_ROOT

SUITES = REPO_ROOT / "oodbench" / "suites"
REPO = "org/tiny-food"
REV = "0123456789abcdef0123456789abcdef01234567"
NAMES = ["apple", "bread", "cake", "donut"]
PER_CLASS = {"train": 3, "validation": 2, "extra": 1}  # "extra" is a split no suite reads


def _file(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Any) -> Path:
    """Empty HF caches and data dir of this test's own; the CLI's registry and a wide console."""
    import datasets
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("OODBENCH_DATA", str(data))
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    monkeypatch.setattr(cli, "console", Console(width=3000, color_system=None))
    return data


@pytest.fixture
def fake_hub(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """A reachable hub holding REPO: one parquet file per split, written by `datasets` with a
    ClassLabel; load_dataset_builder resolves its files as `datasets` does (hf://...@REV/...)
    and snapshot_download puts the files it is asked for into the hub cache's layout."""
    import datasets
    import huggingface_hub

    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=NAMES)})
    blobs: dict[str, bytes] = {}
    for split, count in PER_CLASS.items():
        labels = [label for label in range(len(NAMES)) for _ in range(count)]
        images = [Image.new("RGB", (4, 4), (label, count, 0)) for label in labels]
        file = tmp_path / f"{split}.parquet"
        datasets.Dataset.from_dict({"image": images, "label": labels},
                                   features=features).to_parquet(str(file))
        blobs[_file(split)] = file.read_bytes()
    calls: dict[str, list] = {"builder": [], "snapshot": []}
    builder = SimpleNamespace(
        config=SimpleNamespace(data_files={split: [f"hf://datasets/{REPO}@{REV}/{_file(split)}"]
                                           for split in PER_CLASS}),
        info=SimpleNamespace(features=features))

    def load_dataset_builder(path: str, name: str | None = None, **_: Any) -> Any:
        calls["builder"].append(path)
        return builder

    def snapshot_download(repo_id: str, *, repo_type: str, revision: str,
                          allow_patterns: list[str], **_: Any) -> str:
        calls["snapshot"].append((repo_id, repo_type, revision, list(allow_patterns)))
        snapshot = Path(huggingface_hub.constants.HF_HUB_CACHE) / \
            f"datasets--{repo_id.replace('/', '--')}" / "snapshots" / revision
        for pattern in allow_patterns:
            (snapshot / pattern).parent.mkdir(parents=True, exist_ok=True)
            (snapshot / pattern).write_bytes(blobs[pattern])
        return str(snapshot)

    monkeypatch.setattr(datasets, "load_dataset_builder", load_dataset_builder)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr("oodbench.data.hub_source.prefer_offline_when_unreachable", lambda: False)
    return calls


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every connection attempt is recorded and refused, and so is a hub-id load_dataset
    outside offline mode (a cache lookup in offline mode is fine)."""
    import datasets

    import oodbench.hub as hub

    def clear_probe_cache() -> None:  # a cached answer would hide a probe
        for probe in vars(hub).values():
            if callable(getattr(probe, "cache_clear", None)):
                probe.cache_clear()

    clear_probe_cache()
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[:2])
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    real = datasets.load_dataset

    def local_only(path: str, *args: Any, **kwargs: Any) -> Any:
        if "/" in path and not Path(path).exists() and not datasets.config.HF_HUB_OFFLINE:
            attempts.append(("load_dataset with the hub on", path))  # it would download
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", local_only)
    yield attempts
    clear_probe_cache()


def _suite(tmp_path: Path) -> Path:
    path = tmp_path / "tinyfood.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tinyfood
        id:
          name: food-2
          classes: [bread, donut]
          test: {{type: hf, id: {REPO}, split: validation, labels: [1, 3], expected_count: 4}}
          train: {{type: hf, id: {REPO}, split: train, labels: [1, 3]}}
        ood:
          - {{name: other, group: near,
              source: {{type: hf, id: {REPO}, split: validation, labels: [0, 2]}}}}
          - {{name: far-set, group: far,
              source: {{type: imagefolder, root: "${{data}}/ood/far", expected_count: 3,
                        obtain: "get far.tar from example.org, unpack in ${{data}}/ood/far"}}}}
        """))
    return path


def test_fetch_downloads_only_the_splits_the_suite_reads(fake_hub, env: Path, tmp_path: Path,
                                                         no_network) -> None:
    suite_file = _suite(tmp_path)
    result = CliRunner().invoke(cli.app, ["data", "fetch", str(suite_file)])
    assert result.exit_code == 0, result.output
    # one download per split the suite reads, each asking for exactly that split's files
    assert sorted(fake_hub["snapshot"]) == [
        (REPO, "dataset", REV, [_file("train")]), (REPO, "dataset", REV, [_file("validation")])]
    assert hf_record_path(REPO, None, "validation").is_file()
    assert not hf_record_path(REPO, None, "extra").exists()
    out = result.output
    assert f"{REPO} (validation) for food-2, other: fetched 1 file(s)" in out
    # the set to download by hand: source and command, layout, with ${data} written out
    assert "far-set (OOD far): download by hand" in out
    assert f"how: get far.tar from example.org, unpack in {env}/ood/far" in out
    assert f"layout: {env}/ood/far/<images> (sub-folders allowed), 3 images" in out
    assert "${data}" not in out
    assert "tinyfood: 3 of 4 set(s) ready; 1 to download by hand" in out

    # a run reads the fetched files: no connection, no load_dataset of the hub id
    suite = load_suite(suite_file)
    images = resolve_source(suite.id_test, suite.id_name, suite.classes)
    assert images.labels.tolist() == [0, 0, 1, 1]  # bread, bread, donut, donut
    assert images.open(0).getpixel((0, 0)) == (1, 2, 0)  # label 1 of the validation split
    near = resolve_source(suite.ood[0].source, "other", None)
    assert len(near) == 4 and set(near.labels.tolist()) == {-1}
    train = resolve_source(suite.id_train, "food-2-train", suite.classes)
    assert len(train) == 6
    show = CliRunner().invoke(cli.app, ["suites", "show", str(suite_file)])
    assert show.exit_code == 0, show.output
    rows = {line.split("│")[1].strip(): line for line in show.output.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert "present: 4 images" in rows["food-2"] and "present: 6 images" in rows["food-2-train"]
    assert "present: 4 images" in rows["other"] and "missing" in rows["far-set"]
    assert no_network == []
    # fetched already: a second fetch downloads nothing (and needs no hub)
    again = CliRunner().invoke(cli.app, ["data", "fetch", str(suite_file), "--no-train"])
    assert again.exit_code == 0 and "already fetched" in again.output
    assert len(fake_hub["snapshot"]) == 2


def test_fetch_with_the_hub_unreachable_is_one_line(env: Path, tmp_path: Path,
                                                    monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as prefer_offline_when_unreachable decides
    result = CliRunner().invoke(cli.app, ["data", "fetch", str(_suite(tmp_path))])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"error: Cannot fetch Hugging Face dataset '{REPO}' (split ")
    assert "not reachable" in lines[0]


def test_suites_show_food101_downloads_nothing(env: Path, no_network) -> None:
    """No cache at all: the hub sets are reported missing with the fetch command, and neither
    a connection nor a hub-id load_dataset happened (it used to download ~5 GB here)."""
    result = CliRunner().invoke(cli.app, ["suites", "show", "food101"])
    assert result.exit_code == 0, result.output
    assert no_network == []
    hub_rows = [line for line in result.output.splitlines() if "ethz/food101" in line]
    assert len(hub_rows) == 3  # ID test, ID train, near-OOD
    for row in hub_rows:
        assert "missing:" in row and "`oodbench data fetch food101`" in row
        assert "offline and it is not in the local cache" in row


def test_hints_name_no_dependency_we_already_have_and_expand_data(env: Path) -> None:
    """No `obtain` hint asks for `pip install datasets` (a dependency); `see SUITE` hints are
    completed from that suite, with ${data} written out."""
    from oodbench.runner import resolve_suite

    for file in SUITES.glob("*.yaml"):
        text = file.read_text()
        for dependency in ("datasets", "huggingface_hub", "huggingface-hub", "torch", "pillow"):
            assert f"pip install {dependency}" not in text, file.name
    registry = plugins_module.get_registry()
    food = resolve_suite(registry, "food101")
    textures = next(s.source for s in food.ood if s.name == "Textures")
    assert textures["obtain"] == "see imagenet-far"
    hint = fuller_hint(textures, registry)
    assert "robots.ox.ac.uk" in hint and f"{env}/ood/dtd/images/<texture>/" in hint
    assert "${data}" not in hint

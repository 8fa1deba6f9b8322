"""Fixtures of the OLE plugin tests: isolation, a registry with the toy backbone, a colour suite,
a fake WordNet and a duck-typed MethodEnv for component-level tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from oodbench.cache import ArtifactCache, content_key
from oodbench.labels import wordnet
from oodbench.paths import data_dir
from oodbench.plugins import Registry, reset_registry
from oodbench.testing import ToyBackbonePlugin, write_toy_suite

# the user's WordNet (if fetched), located before the tests redirect OODBENCH_HOME
REAL_DATA_DIR = data_dir()


@pytest.fixture
def real_data_dir() -> Path:
    """The user's data folder (with WordNet, if fetched), as it was before isolation."""
    return REAL_DATA_DIR


@pytest.fixture(autouse=True)
def _ole_isolated(tmp_path, monkeypatch):
    """No test sees another's registry, cache, results or WordNet tables."""
    monkeypatch.setenv("OODBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OODBENCH_LOAD_PLUGINS", "")
    monkeypatch.delenv("OODBENCH_DATA", raising=False)
    monkeypatch.delenv("OODBENCH_CACHE", raising=False)
    reset_registry()
    wordnet.load_synsets.cache_clear()
    yield
    reset_registry()
    wordnet.load_synsets.cache_clear()


@pytest.fixture
def ole_registry() -> Registry:
    from oodbench_ole import plugin

    reg = Registry().load(entry_points=False)
    reg.add_plugin(ToyBackbonePlugin(), "toy")
    reg.add_plugin(plugin, "ole")
    return reg


@pytest.fixture
def ole_colour_suite(tmp_path) -> Path:
    """ID = red/green/blue; near OOD = yellow/magenta; far OOD = grey (toy backbone)."""
    return write_toy_suite(tmp_path, id_images=12, train_images=0, near_images=10,
                           far_images=15)


# lexfile numbers: 05 noun.animal, 06 noun.artifact, 09 noun.cognition, 13 noun.food
FAKE_NOUNS = [
    ("00000010", "05", ["dog", "domestic_dog", "Canis_familiaris"]),
    ("00000020", "05", ["cat", "true_cat"]),
    ("00000030", "05", ["zebra"]),
    ("00000040", "06", ["hammer", "claw-hammer", "T-square"]),
    ("00000050", "06", ["piano", "pianoforte", "dog"]),
    ("00000060", "09", ["idea", "thought"]),
    ("00000070", "13", ["apple", "apple2"]),
]


@pytest.fixture
def fake_wordnet(tmp_path, monkeypatch) -> Path:
    """A tiny WordNet database in wndb(5WN) format under $OODBENCH_DATA/wordnet."""
    root = tmp_path / "wndata"
    folder = root / "wordnet" / "usr" / "share" / "wordnet"
    folder.mkdir(parents=True)
    lines = ["  1 This is a fake WordNet licence header line"]
    for offset, lexfile, words in FAKE_NOUNS:
        pairs = " ".join(f"{w} 0" for w in words)
        lines.append(f"{offset} {lexfile} n {len(words):02x} {pairs} 000 | a fake gloss")
    (folder / "data.noun").write_text("\n".join(lines) + "\n")
    (folder / "data.adj").write_text("")
    monkeypatch.setenv("OODBENCH_DATA", str(root))
    wordnet.load_synsets.cache_clear()
    return folder


@pytest.fixture
def make_env(tmp_path):
    """Factory of duck-typed MethodEnvs: just what the OLE components use (no backbone)."""

    def make(classes=("red", "green", "blue"), prompts=("a photo of a {}.",),
             id_features=None) -> SimpleNamespace:
        return _fake_env(tmp_path, tuple(classes), tuple(prompts), id_features)

    return make


class FakeStore:
    """Records ``label_embeddings`` calls (labels, templates) instead of encoding anything."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []

    def label_embeddings(self, backbone, labels, templates, ctx):
        self.calls.append((list(labels), list(templates)))


def _fake_env(tmp_path: Path, classes: tuple, prompts: tuple, id_features) -> SimpleNamespace:
    return SimpleNamespace(
        suite=SimpleNamespace(classes=tuple(classes), prompts=tuple(prompts)),
        cache=ArtifactCache(tmp_path / "cache"),
        key=lambda *parts: content_key("fake-backbone", list(classes), *parts),
        notes={},
        log=lambda _msg: None,
        id_text_features=lambda templates=None: id_features,
        reuse=lambda stage: True,
        store=FakeStore(),
        backbone=None,
        backbone_name="fake-backbone",
        ctx=None,
    )

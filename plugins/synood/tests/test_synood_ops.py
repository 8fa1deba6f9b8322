"""SynOOD's operational parts: progress bars, the classifier registry and synthesis split by
hand across separate runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_synood import (
    DescriberPlugin,
    FakeInpaintGenerator,
    FakePlugin,
    _method,
    _toy_stage_inputs,
    synood_registry,  # noqa: F401 (a fixture)
)

import oodbench
from oodbench.errors import UnknownNameError
from oodbench.generative import ImageClassifier
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext
from oodbench_synood.classifiers import (
    TorchvisionResNet50,
    ZeroShotHead,
    classifier_identity,
    make_classifier,
)
from oodbench_synood.mining import mine_labels


class Bars:
    """Records env.progress(name, total) bars and their last update."""

    def __init__(self) -> None:
        self.bars: dict[str, list[int]] = {}

    def __call__(self, name: str, total: int):
        self.bars[name] = [0, total]

        def update(done: int, _total: int) -> None:
            self.bars[name][0] = done

        return update


def test_stages_show_progress_for_mining_and_training(tmp_path, monkeypatch):
    from oodbench_synood.finetune import LabelTuner, ProjectionTuner

    bars = Bars()
    env, head, _ = _toy_stage_inputs(tmp_path, monkeypatch, progress=bars)
    ProjectionTuner(epochs=3, batch_size=16).finetune(env, head, None)
    LabelTuner(epochs=2, batch_size=16).finetune(env, head, None)
    # 64 features (32 ID + 32 synthetic) in batches of 16 for 3 epochs; 32 for 2 epochs
    assert bars.bars["synood stage A: train projection"] == [12, 12]
    assert bars.bars["synood stage B: tune labels"] == [4, 4]
    assert bars.bars["stage A"] == [32, 32] and bars.bars["stage B"] == [32, 32]  # mining
    bars.bars.clear()  # cached weights: no training bar the second time
    ProjectionTuner(epochs=3, batch_size=16).finetune(env, head, None)
    assert "synood stage A: train projection" not in bars.bars


def test_mining_reports_each_chunk():
    seen = []
    mine_labels(torch.eye(3)[[0, 1, 2, 0, 1]], torch.eye(3), chunk=2,
                progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


# -- guidance classifiers ------------------------------------------------------------------------
@dataclasses.dataclass
class ConstantClassifier(ImageClassifier):
    name = "constant"
    description = "test: uniform logits"
    classes: int = 3

    def identity(self, env) -> str:
        return f"constant:{self.classes}"

    def bind(self, env) -> None:
        self.num_classes = self.classes

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(images), self.num_classes)


class ThirdParty:
    @oodbench.hookimpl
    def register_image_classifiers(self, register):
        register(ConstantClassifier)


@dataclasses.dataclass
class RegistryEnv:
    """What make_classifier / classifier_identity read from a MethodEnv."""

    registry: object


def test_builtin_classifiers_are_registered_and_keep_their_identity(synood_registry):  # noqa: F811
    listed = {n: r.obj for n, r in synood_registry.entries["image_classifier"].items()}
    assert listed["zero-shot"] is ZeroShotHead and listed["resnet50"] is TorchvisionResNet50
    # the images' cache key part is what it was before classifiers became components
    env = RegistryEnv(synood_registry)
    assert classifier_identity("resnet50", env) == "torchvision:resnet50:IMAGENET1K_V2"


def test_third_party_classifier_through_the_core_hook(synood_registry):  # noqa: F811
    synood_registry.add_plugin(ThirdParty(), "third-party")
    env = RegistryEnv(synood_registry)
    made = make_classifier("constant", env)
    assert isinstance(made, ConstantClassifier) and made.num_classes == 3
    assert classifier_identity("constant", env) == "constant:3"
    assert made(torch.zeros(2, 3, 8, 8)).shape == (2, 3)


def test_unknown_classifier_names_the_known_ones(synood_registry):  # noqa: F811
    env = RegistryEnv(synood_registry)
    with pytest.raises(UnknownNameError) as caught:
        make_classifier("resnet-50", env)
    message = str(caught.value)
    assert "\n" not in message and "resnet50" in message and "zero-shot" in message
    with pytest.raises(UnknownNameError):
        classifier_identity("nope", env)  # fails before any image is made


def test_registering_a_non_classifier_is_refused(registry):
    class Bad:
        @oodbench.hookimpl
        def register_image_classifiers(self, register):
            register(dict)

    registry.add_plugin(Bad(), "bad")  # reported, not raised: other plugins keep working
    (failure,) = registry.failures()
    assert "ImageClassifier" in failure.error and "image_classifier" in registry.entries


# -- shards split by hand -----------------------------------------------------------------------
@pytest.fixture
def shard_registry(registry):
    from oodbench_synood import plugin

    for obj, name in ((plugin, "synood"), (FakePlugin(), "fakes"),
                      (DescriberPlugin(), "describer")):
        registry.add_plugin(obj, name)
    return registry


def test_runs_split_by_hand_stop_until_every_slice_is_made(shard_registry, colour_suite,
                                                           tmp_path):
    """Two separate runs with shard_index/shard_count, in turn: the first makes its slice and
    stops with one line (no record) naming what is missing; the second finds every image and
    scores. A bad split is a usage error."""
    words = tmp_path / "neg.txt"
    words.write_text("yellow\nmagenta\ncyan\ngrey\n")
    method = str(_method(tmp_path, words))
    ctx = RunContext(cache_dir=tmp_path / "c")

    def request(index: int, count: int = 2) -> RunRequest:
        return RunRequest(method, str(colour_suite), output_dir=tmp_path / "out",
                          params={"synood-inpaint.shard_index": str(index),
                                  "synood-inpaint.shard_count": str(count)})

    with pytest.raises(oodbench.errors.ParameterError, match="shard_index must be in"):
        run(request(2), ctx, shard_registry)
    FakeInpaintGenerator.calls = 0
    with pytest.raises(oodbench.errors.OODBenchError) as caught:
        run(request(0), ctx, shard_registry)
    assert "made 6 images (shard 0 of 2); 6 of the 12 images are not made" in str(caught.value)
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()
    record = run(request(1), ctx, shard_registry)
    assert FakeInpaintGenerator.calls == 2 * 2 * 3  # 6 images per shard, batches of 3, K = 3
    assert record["notes"]["synood_images"]["count"] == 12 and record["metrics"]


def test_start_noise_does_not_depend_on_where_the_data_lies(tmp_path):
    """Seeded by path, a copy of the data in another folder gave other images and results."""
    from oodbench_synood.synthesizer import noise_seed

    a, b = tmp_path / "home" / "x.png", tmp_path / "ci" / "data" / "x.png"
    other = tmp_path / "home" / "y.png"
    for path, payload in ((a, b"same bytes"), (b, b"same bytes"), (other, b"other bytes")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    assert noise_seed(0, str(a)) == noise_seed(0, str(b))
    assert noise_seed(0, str(a)) != noise_seed(0, str(other))
    assert noise_seed(0, str(a)) != noise_seed(1, str(a))
    assert noise_seed(0, "hf://ds/train/3") == noise_seed(0, "hf://ds/train/3")

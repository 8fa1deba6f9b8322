from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import torch

import oodbench
from oodbench.generative import ImageGenerator
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext
from oodbench_synood.guidance import (
    effective_margin,
    energy_guidance_score,
    guidance_loss,
    guided_inpaint,
    noise_gradient,
)
from oodbench_synood.mining import mine_labels
from oodbench_synood.train import train_label_features, train_projection


def test_guidance_score_is_max_at_uniform():
    uniform = torch.zeros(1, 10)
    peaked = torch.tensor([[5.0] + [0.0] * 9])
    assert energy_guidance_score(uniform).item() == pytest.approx(-np.log(10))
    assert energy_guidance_score(peaked).item() < energy_guidance_score(uniform).item()


def test_gradient_step_lowers_the_id_confidence():
    """A toy linear classifier on the 'decoded' latent: one update must flatten its softmax."""
    weights = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])

    def classifier(images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, :2] @ weights.T

    latent = torch.tensor([[[[0.9]], [[0.1]]]])  # confidently class 0
    margin = effective_margin(-5.0, 3)  # the paper's m scaled to 3 classes: unreachable
    assert margin > -np.log(3)
    grad, _ = noise_gradient(lambda z: z, classifier, latent, margin=margin)
    updated = latent - 0.1 * grad
    before = torch.softmax(classifier(latent), 1).max().item()
    after = torch.softmax(classifier(updated), 1).max().item()
    assert after < before
    assert guidance_loss(classifier(updated), margin) < guidance_loss(classifier(latent), margin)
    # the paper's absolute m = -5 with only 3 classes would push towards confident ID instead
    wrong, _ = noise_gradient(lambda z: z, classifier, latent, margin=-5.0)
    assert torch.softmax(classifier(latent - 0.1 * wrong), 1).max().item() > before


@dataclasses.dataclass
class RecordingInpainter:
    """denoise = image latents + 0.1·noise; records what each iteration started from."""

    starts: list = dataclasses.field(default_factory=list)
    resolution: int = 4
    guidance_latent_scale: float = 1.0  # a pixel model: u = ẑ₀

    def noise(self, batch: int, seed: int) -> torch.Tensor:
        return torch.randn(batch, 3, 4, 4, generator=torch.Generator().manual_seed(seed))

    def encode(self, images):
        return images * 2 - 1

    def denoise(self, image_latents, noise, prompts, strength, steps, guidance):
        self.starts.append((image_latents.clone(), noise.clone()))
        return image_latents + 0.1 * noise

    def decode(self, latents):
        return (latents + 1) / 2


def test_restarts_from_the_original_image_with_updated_noise():
    inpainter = RecordingInpainter()
    images = torch.rand(2, 3, 4, 4)

    def classifier(x):
        return torch.stack([x[:, 0].mean((1, 2)) * 5, x[:, 1].mean((1, 2))], dim=1)

    noise = inpainter.noise(2, 0)
    out, scores = guided_inpaint(inpainter, classifier, images, ["a", "b"], noise, 3, -5.0,
                                 10.0, 0.6, 20, 8.0)
    assert len(inpainter.starts) == 3 and len(scores) == 3
    for image_latents, _ in inpainter.starts:  # always the original image
        assert torch.equal(image_latents, images * 2 - 1)
    assert not torch.equal(inpainter.starts[0][1], inpainter.starts[1][1])  # noise was updated
    assert out.shape == images.shape
    plain = RecordingInpainter()
    again, _ = guided_inpaint(plain, classifier, images, ["a", "b"], noise, 3, -5.0, 0.0, 0.6,
                              20, 8.0)
    # r = 0 (the ablation): every restart would repeat the same noise, so one denoise is run
    assert len(plain.starts) == 1 and torch.equal(plain.starts[0][1], noise)
    assert torch.allclose(again, ((images * 2 - 1 + 0.1 * noise + 1) / 2).clamp(0, 1))


def test_noise_update_does_not_depend_on_the_batch():
    """The reference's batch-mean over 2 images, per image: the same image gets the same
    gradient alone or among three others."""
    torch.manual_seed(0)
    latents = torch.rand(4, 2, 1, 1)
    weights = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])

    def classifier(images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1) @ weights.T

    together, _ = noise_gradient(lambda z: z, classifier, latents, margin=0.5)
    alone, _ = noise_gradient(lambda z: z, classifier, latents[:1], margin=0.5)
    assert torch.allclose(together[:1], alone)
    # and it equals the gradient of the reference's mean loss over a batch of two
    pair, _ = noise_gradient(lambda z: z, classifier, latents[:2], margin=0.5)
    z = latents[:2].clone().requires_grad_(True)
    (reference,) = torch.autograd.grad(guidance_loss(classifier(z), 0.5), z)
    assert torch.allclose(pair, reference)


def test_offline_preset_and_explicit_values():
    from oodbench_synood.synthesizer import OFFLINE, PAPER, SynOODSynthesizer

    assert SynOODSynthesizer().resolved() == OFFLINE  # the default in-painter: mini-diffusion
    paper = SynOODSynthesizer(inpainter="diffusers-inpaint").resolved()
    assert paper == PAPER == {"per_class": 50, "step": 10.0}
    explicit = SynOODSynthesizer(per_class=7, step=0.0).resolved()
    assert explicit == {"per_class": 7, "step": 0.0}  # r = 0 is the ablation, not "auto"


def test_mining_picks_the_most_similar_label():
    labels = torch.eye(3)
    images = torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.2, 0.8]])
    assert mine_labels(images, labels).tolist() == [1, 2]


def test_fine_tuners_learn_on_toy_data():
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    targets = torch.randint(0, 6, (256,))
    feats = torch.nn.functional.normalize(text[targets] + 0.8 * torch.randn(256, 8), dim=1)
    # half-precision inputs, as from a bf16 backbone: the trained parameters stay fp32
    model, log = train_projection(feats.bfloat16(), targets, text.half(), epochs=6, batch=32)
    assert log.losses[-1] < log.losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == 8 * 8 + 8 + 2 * 8
    out = model(feats)
    assert out.shape == feats.shape and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(256), atol=1e-5)
    tuned, log_b = train_label_features(feats.bfloat16(), targets, text.half(), epochs=6,
                                        batch=32)
    assert log_b.losses[-1] < log_b.losses[0]
    assert tuned.dtype == torch.float32 and tuned.shape == text.shape
    assert torch.allclose(tuned.norm(dim=1), torch.ones(6), atol=1e-5)


def test_projection_starts_close_to_the_zero_shot_features():
    """At the reference's scale (raw features, ~1 per coordinate) the random residual does not
    swamp f; on unit vectors (the old behaviour, scale 1) it does."""
    from oodbench_synood.train import ResidualProjection, default_scale

    torch.manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(64, 384), dim=1)
    scaled = ResidualProjection(384, default_scale(384))
    unit = ResidualProjection(384, 1.0)
    with torch.no_grad():
        assert (scaled(feats) * feats).sum(1).mean() > 0.7
        assert (unit(feats) * feats).sum(1).mean() < 0.2
    assert float(scaled.state_dict()["scale"]) == pytest.approx(384**0.5)


def test_label_tuning_steps_shrink_with_the_reference_scale():
    """Free label vectors are normalised in the forward pass, so a vector of norm ρ turns ρ²
    times less per SGD step than a unit one: starting at the raw-feature norm (as the reference
    does) keeps the reference's lr meaningful. Unit vectors made the real stage B diverge."""
    torch.manual_seed(0)
    labels = torch.nn.functional.normalize(torch.randn(20, 64), dim=1)
    targets = torch.arange(40) % 20
    feats = torch.nn.functional.normalize(torch.randn(40, 64), dim=1)

    def turned(scale: float) -> float:
        tuned, _ = train_label_features(feats, targets, labels, epochs=1, lr=1e-4, momentum=0.0,
                                        weight_decay=0.0, scale=scale)
        return float((tuned - labels).norm(dim=1).mean())  # ≈ the angle, for small turns

    ratio = turned(1.0) / turned(8.0)
    assert 0.8 * 64 < ratio < 1.25 * 64


def _toy_stage_inputs(tmp_path, monkeypatch, progress=None):
    """A head with 2 ID classes and 6 negatives, and synthetic images next to negatives 1 and 4,
    handed to the fine-tuners through a stand-in for the feature-encoding ``prepare``."""
    from types import SimpleNamespace

    from oodbench.cache import ArtifactCache
    from oodbench.types import TextHead
    from oodbench_synood import finetune

    torch.manual_seed(0)
    unit = torch.nn.functional.normalize
    id_text, negatives = unit(torch.randn(2, 16), dim=1), unit(torch.randn(6, 16), dim=1)
    id_labels = torch.arange(32) % 2
    id_feats = unit(id_text[id_labels] + 0.15 * torch.randn(32, 16), dim=1)
    mined = np.where(np.arange(32) % 2 == 0, 1, 4)
    ood_feats = unit(negatives[torch.as_tensor(mined)] + 0.15 * torch.randn(32, 16), dim=1)
    prepared = finetune.Prepared(id_feats, id_labels, ood_feats, mined, np.unique(mined), "k")
    def fake_prepare(env, head, samples, stage=""):  # still mines, for the progress bar
        finetune.mine_labels(ood_feats, negatives, progress=finetune._bar(env, stage, 32))
        return prepared

    monkeypatch.setattr(finetune, "prepare", fake_prepare)
    env = SimpleNamespace(id_text_features=lambda templates=None: id_text, log=lambda _: None,
                          key=lambda *parts: oodbench.cache.content_key(*parts), notes={},
                          cache=ArtifactCache(tmp_path), reuse=lambda stage: True,
                          progress=progress)
    head = TextHead(id_text, ["a", "b"], negatives, [f"n{i}" for i in range(6)])
    return env, head, prepared


def test_stages_feed_the_score(tmp_path, monkeypatch):
    """Stage A sets the image adapter, stage B swaps only the mined rows (or keeps only them),
    and the NegLabel score then separates ID from synthetic images."""
    from oodbench.baselines.neglabel import NegLabelScorer
    from oodbench_synood.finetune import LabelTuner, ProjectionTuner

    env, head, data = _toy_stage_inputs(tmp_path, monkeypatch)
    tuned = ProjectionTuner(epochs=3).finetune(env, head, None)
    assert tuned.image_adapter is not None and torch.equal(tuned.extra_features,
                                                           head.extra_features)
    tuned = LabelTuner(lr=2.0).finetune(env, tuned, None)
    changed = (tuned.extra_features != head.extra_features).any(dim=1)
    assert changed.tolist() == [False, True, False, False, True, False]
    only = LabelTuner(negatives="tuned", lr=2.0).finetune(env, head, None)
    assert only.extra_labels == ["n1", "n4"] and only.extra_features.shape == (2, 16)
    scorer = NegLabelScorer(id_template="", ngroup=2)
    scored = scorer.prepare(env, tuned)
    id_scores = scorer.score(scored.adapt(data.id_feats), scored)
    ood_scores = scorer.score(scored.adapt(data.ood_feats), scored)
    assert id_scores.min() > ood_scores.max()
    assert set(env.notes) == {"synood_stage_a", "synood_stage_b"}


@dataclasses.dataclass
class FakeInpaintGenerator(ImageGenerator):
    """Pixel-space 'diffusion': the start is image + noise, denoise shrinks the noise."""

    name = "fake-inpaint"
    resolution: int = 8
    guidance_latent_scale: ClassVar[float] = 1.0  # a pixel model: u = ẑ₀

    def text_to_image(self, prompts, seeds):
        raise NotImplementedError

    def noise(self, batch, seed):
        return torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(seed))

    def encode(self, images):
        return images * 2 - 1

    def denoise(self, image_latents, noise, prompts, strength, steps, guidance):
        FakeInpaintGenerator.calls += 1
        return (image_latents + strength * 0.5 * noise).clamp(-1, 1)

    def decode(self, latents):
        return (latents + 1) / 2

    calls = 0


class FakePlugin:
    @oodbench.hookimpl
    def register_image_generators(self, register):
        register(FakeInpaintGenerator)


@pytest.fixture
def synood_registry(registry):
    from oodbench_synood import plugin

    registry.add_plugin(plugin, "synood", "oodbench-synood")
    registry.add_plugin(FakePlugin(), "fakes")
    return registry


def _method(tmp_path, words):
    method = tmp_path / "synood.yaml"
    method.write_text(
        "name: synood-test\n"
        f"label_generator: {{name: file, params: {{path: {words}}}}}\n"
        "synthesizer: {name: synood-inpaint, params: {inpainter: fake-inpaint, per_class: 4, "
        "describer: scripted-describer, classifier: zero-shot, batch_size: 3}}\n"
        "finetuners: [{name: synood-projection, params: {epochs: 2}}, "
        "{name: synood-label-tuning, params: {epochs: 2}}]\n"
        "scorer: {name: neglabel, params: {id_template: 'a nice {}', ngroup: 2}}\n")
    return method


@dataclasses.dataclass
class ScriptedDescriber(oodbench.generative.ImageDescriber):
    name = "scripted-describer"

    def describe(self, images, prompts):
        return ["grass, sky"] * len(images)

    def context(self, images, subjects):
        return ["grass, sky, a fence and a very long list of other things that goes on"] * len(
            images)

    def propose(self, images, prompts):
        return [["grass"]] * len(images)


class DescriberPlugin:
    @oodbench.hookimpl
    def register_image_describers(self, register):
        register(ScriptedDescriber)


def test_synood_end_to_end_resumes_and_reuses(synood_registry, colour_suite, tmp_path,
                                              monkeypatch):
    synood_registry.add_plugin(DescriberPlugin(), "describer")
    words = tmp_path / "neg.txt"
    words.write_text("yellow\nmagenta\ncyan\ngrey\norange\npurple\n")
    method = _method(tmp_path, words)
    ctx = RunContext(cache_dir=tmp_path / "cache")
    from oodbench_synood import synthesizer as synth_module

    real_save = synth_module.atomic_write
    saved = {"n": 0}

    def interrupting(path, write):
        saved["n"] += 1
        if saved["n"] > 6:  # 12 images are selected; stop after 6
            raise KeyboardInterrupt
        real_save(path, write)

    monkeypatch.setattr(synth_module, "atomic_write", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run(RunRequest(str(method), str(colour_suite)), ctx, synood_registry)
    monkeypatch.setattr(synth_module, "atomic_write", real_save)
    FakeInpaintGenerator.calls = 0
    record = run(RunRequest(str(method), str(colour_suite)), ctx, synood_registry)
    # only the 6 missing images were made, 3 guided iterations each
    assert FakeInpaintGenerator.calls == 2 * 3
    notes = record["notes"]
    assert notes["synood_images"]["count"] == 12
    # real data: each stand-in for the paper's setting is named in the record
    assert record["substitutions"] == {
        "synood-inpaint.per_class": 4, "synood-inpaint.describer": "scripted-describer",
        "synood-inpaint.inpainter": "fake-inpaint", "synood-inpaint.classifier": "zero-shot"}
    assert record["params"]["synood-inpaint"]["step"] == 10.0  # the paper's r
    assert notes["synood_stage_a"]["synthetic_images"] == 12
    assert len(notes["synood_stage_b"]["losses"]) == 2
    assert "synthesize" in record["timings"] and "finetune" in record["timings"]
    # stages A and B are timed apart; "finetune" is their sum
    stages = [record["timings"][f"finetune:{n}"]
              for n in ("synood-projection", "synood-label-tuning")]
    assert all(t > 0 for t in stages) and sum(stages) <= record["timings"]["finetune"] + 1e-3
    FakeInpaintGenerator.calls = 0
    again = run(RunRequest(str(method), str(colour_suite)), ctx, synood_registry)
    assert FakeInpaintGenerator.calls == 0 and again["cache"]["images_encoded"] == 0
    assert again["metrics"] == record["metrics"]


def test_rerun_from_finetune_keeps_images(synood_registry, colour_suite, tmp_path, monkeypatch):
    synood_registry.add_plugin(DescriberPlugin(), "describer")
    words = tmp_path / "neg.txt"
    words.write_text("yellow\nmagenta\ncyan\ngrey\n")
    method = _method(tmp_path, words)
    run(RunRequest(str(method), str(colour_suite)), RunContext(cache_dir=tmp_path / "c"),
        synood_registry)
    from oodbench_synood import finetune

    trained = {"n": 0}
    real = finetune.train_projection

    def counting(*args, **kwargs):
        trained["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_projection", counting)
    FakeInpaintGenerator.calls = 0
    ctx = RunContext(cache_dir=tmp_path / "c", refresh=("finetune",))
    run(RunRequest(str(method), str(colour_suite)), ctx, synood_registry)
    assert trained["n"] == 1 and FakeInpaintGenerator.calls == 0
    run(RunRequest(str(method), str(colour_suite)), RunContext(cache_dir=tmp_path / "c"),
        synood_registry)
    assert trained["n"] == 1  # cached again afterwards


def _shard(suite, method, cache, index, results):
    """One shard in a fresh (spawned) process, with its own registry as a real process has."""
    from oodbench.errors import OODBenchError
    from oodbench.plugins import Registry
    from oodbench.testing import ToyBackbonePlugin
    from oodbench_synood import plugin

    registry = Registry().load(entry_points=False)
    for obj, name in ((ToyBackbonePlugin(), "toy"), (plugin, "synood"), (FakePlugin(), "fakes"),
                      (DescriberPlugin(), "describer")):
        registry.add_plugin(obj, name)
    params = {"synood-inpaint.shard_index": str(index), "synood-inpaint.shard_count": "2"}
    try:
        run(RunRequest(str(method), str(suite), params=params), RunContext(cache_dir=cache),
            registry)
    except OODBenchError as exc:  # a shard stops when the others' images are still missing
        results.put(str(exc))
        return
    results.put("complete")


def test_two_processes_synthesize_disjoint_shards(synood_registry, colour_suite, tmp_path):
    import multiprocessing

    synood_registry.add_plugin(DescriberPlugin(), "describer")
    words = tmp_path / "neg.txt"
    words.write_text("yellow\nmagenta\ncyan\ngrey\n")
    method = _method(tmp_path, words)
    cache = tmp_path / "c"
    spawn = multiprocessing.get_context("spawn")  # fork + torch threads can deadlock
    results = spawn.Queue()
    workers = [spawn.Process(target=_shard, args=(colour_suite, method, cache, i, results))
               for i in (0, 1)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    # the shard that finishes last finds every image and goes on to score; another stops
    assert "complete" in outcomes and all(o == "complete" or "shard" in o for o in outcomes)
    folders = list((cache / "images" / "synood").iterdir())
    assert len(folders) == 1 and len(list(folders[0].glob("*.png"))) == 12
    FakeInpaintGenerator.calls = 0
    record = run(RunRequest(str(method), str(colour_suite)), RunContext(cache_dir=cache),
                 synood_registry)
    assert FakeInpaintGenerator.calls == 0 and record["notes"]["synood_images"]["count"] == 12


def test_plugin_registers_the_inpainting_preset_without_importing_diffusers():
    """``diffusers-inpaint`` (SD-2-inpainting with SynOOD's settings) comes from this plugin;
    registering it loads no diffusers."""
    import subprocess
    import sys

    code = (
        "import sys; from oodbench.plugins import Registry; "
        "import oodbench_synood.plugin as p; r = Registry().load(entry_points=False); "
        "r.add_plugin(p, 'synood', 'oodbench-synood'); "
        "g = r.create('image_generator', 'diffusers-inpaint'); "
        "print(g.model, g.steps, g.strength, g.guidance); print('diffusers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "stabilityai/stable-diffusion-2-inpainting 20 0.6 8.0"
    assert out[1] == "False"

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oodbench.errors import MissingDataError, OODBenchError
from oodbench.results import validate_record
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext
from tests import toy


def _ctx(tmp_path) -> RunContext:
    return RunContext(cache_dir=tmp_path / "cache", batch_size=16)


def test_mcm_on_colour_suite_gives_expected_metrics(registry, colour_suite, tmp_path):
    out = tmp_path / "results"
    record = run(RunRequest("mcm", str(colour_suite), output_dir=out), _ctx(tmp_path), registry)
    validate_record(record, "the run")
    assert record["id_accuracy"] > 0.95  # noisy solid colours are easy for the toy backbone
    far, near = record["metrics"]["grey"], record["metrics"]["secondary"]
    assert far["auroc"] > 0.99 and far["fpr95"] < 0.05
    assert near["group"] == "near" and near["n_ood"] == 30
    assert record["groups"]["far"]["auroc"] == pytest.approx(far["auroc"])
    # the corrupt PNG is skipped and reported, not fatal
    assert record["counts"]["skipped"] == {"grey": 1}
    assert "broken.png" in record["counts"]["skipped_examples"][0][0]
    written = json.loads((out / "mcm--colours--toy-colour.json").read_text())
    assert written["metrics"] == record["metrics"]
    assert written["suite"]["hash"] and written["environment"]["oodbench"]


def test_second_method_does_not_encode_any_image(registry, colour_suite, tmp_path):
    ctx = _ctx(tmp_path)
    before = toy.CALLS["images"]
    first = run(RunRequest("mcm", str(colour_suite)), ctx, registry)
    encoded = toy.CALLS["images"] - before
    assert encoded == first["counts"]["id"] + sum(first["counts"]["ood"].values())
    second = run(RunRequest("energy", str(colour_suite)), ctx, registry)
    assert toy.CALLS["images"] - before == encoded  # nothing re-encoded
    assert second["cache"]["images_encoded"] == 0
    assert second["cache"]["feature_cache_hits"] == 3


def test_param_override_reaches_the_scorer(registry, colour_suite, tmp_path):
    record = run(RunRequest("mcm", str(colour_suite), params={"temperature": "0.05"}),
                 _ctx(tmp_path), registry)
    assert record["params"]["mcm"]["temperature"] == 0.05


def test_interrupted_run_writes_no_record_and_resumes(registry, colour_suite, tmp_path,
                                                      monkeypatch):
    out = tmp_path / "results"
    from oodbench.baselines.softmax import MCMScorer

    def interrupted(self, image_features, head):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(MCMScorer, "score", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(RunRequest("mcm", str(colour_suite), output_dir=out), _ctx(tmp_path), registry)
    assert not out.exists() or not list(out.iterdir())
    record = run(RunRequest("mcm", str(colour_suite), output_dir=out), _ctx(tmp_path), registry)
    assert record["cache"]["images_encoded"] == 0  # features survived the interruption
    assert (out / "mcm--colours--toy-colour.json").exists()


def test_tiny_openclip_backbone_runs_end_to_end(registry, colour_suite, tmp_path):
    record = run(RunRequest("mcm", str(colour_suite), backbone="tiny-clip"), _ctx(tmp_path),
                 registry)
    assert record["backbone"]["name"] == "tiny-clip"
    assert 0.0 <= record["metrics"]["grey"]["auroc"] <= 1.0


def test_missing_dataset_fails_before_any_work(registry, colour_suite, tmp_path):
    text = colour_suite.read_text().replace("/far}", "/nowhere}")
    broken = tmp_path / "colours.yaml"
    broken.write_text(text)
    before = toy.CALLS["images"]
    with pytest.raises(MissingDataError, match=r"Dataset 'grey' is missing: folder .*nowhere"):
        run(RunRequest("mcm", str(broken)), _ctx(tmp_path), registry)
    assert toy.CALLS["images"] == before


def test_bootstrap_intervals_bracket_the_estimate(registry, colour_suite, tmp_path):
    record = run(RunRequest("mcm", str(colour_suite), bootstrap=50), _ctx(tmp_path), registry)
    m = record["metrics"]["secondary"]
    lo, hi = m["ci"]["auroc"]
    assert lo <= m["auroc"] <= hi


def test_scoring_runs_on_the_run_device_and_accepts_tensor_scores(registry, colour_suite,
                                                                   tmp_path, monkeypatch):
    """Scorers get features and head on ctx.device; a tensor result is copied to the host."""
    import torch

    from oodbench.baselines.softmax import MCMScorer, id_cosines
    from oodbench.types import TextHead

    seen: list[tuple[str, str]] = []
    moved_to: list[torch.device] = []
    original_to = TextHead.to

    def recording_to(self, device):
        moved_to.append(torch.device(device))
        return original_to(self, device)

    def tensor_score(self, image_features, head):
        seen.append((image_features.device.type, head.id_features.device.type))
        return id_cosines(image_features, head).max(dim=1).values  # a tensor, not numpy

    monkeypatch.setattr(TextHead, "to", recording_to)
    monkeypatch.setattr(MCMScorer, "score", tensor_score)
    ctx = _ctx(tmp_path)
    record = run(RunRequest("mcm", str(colour_suite)), ctx, registry)
    # CI has only a CPU: what is checked is that the runner moves the head to ctx.device
    assert moved_to == [ctx.device]
    assert seen and set(seen) == {("cpu", "cpu")}
    assert record["metrics"]["grey"]["auroc"] > 0.99


def test_text_head_to_moves_every_tensor_and_copies_the_adapter():
    import torch

    from oodbench.types import TextHead

    adapter = torch.nn.Linear(4, 4)
    head = TextHead(id_features=torch.eye(2, 4), id_labels=["a", "b"],
                    extra_features=torch.ones(3, 4), extra_labels=["x", "y", "z"],
                    image_adapter=adapter, meta={"id_no_features": torch.zeros(2, 4), "n": 1})
    moved = head.to("meta")  # a second device that every machine has
    assert moved.id_features.is_meta and moved.extra_features.is_meta
    assert moved.meta["id_no_features"].is_meta and moved.meta["n"] == 1
    assert moved.image_adapter is not adapter and moved.image_adapter.weight.is_meta
    assert adapter.weight.device.type == "cpu"  # the caller's head is untouched
    same = head.to("cpu")
    assert same.image_adapter is adapter and same.id_features is head.id_features


def test_the_record_names_the_plugin_of_each_component(registry, colour_suite, tmp_path):
    import oodbench

    record = run(RunRequest("mcm", str(colour_suite)), _ctx(tmp_path), registry)
    assert record["components"] == [
        {"role": "backbone", "name": "toy-colour", "plugin": "tests", "distribution": "local",
         "version": "0"},
        {"role": "scorer", "name": "mcm", "plugin": "oodbench.baselines.plugin",
         "distribution": "oodbench", "version": oodbench.__version__},
    ]
    validate_record(record, "the run")


def _bad_plugin(returned: object) -> object:
    """A plugin registering one label generator or fine-tuner that returns ``returned``."""
    import dataclasses

    import oodbench
    from oodbench.contracts import FineTuner, LabelGenerator

    @dataclasses.dataclass
    class Lister(LabelGenerator):
        name = "lister"

        def generate(self, env):
            return returned

    @dataclasses.dataclass
    class Forgetful(FineTuner):
        name = "forgetful"

        def finetune(self, env, head, samples):
            return returned

    class Plugin:
        @oodbench.hookimpl
        def register_label_generators(self, register):
            register(Lister)

        @oodbench.hookimpl
        def register_finetuners(self, register):
            register(Forgetful)

    return Plugin()


@pytest.mark.parametrize("method, returned, message", [
    ("name: m\nlabel_generator: lister\nscorer: neglabel\n", ["a", "b"],
     "Label generator 'lister' returned list from generate(), not a LabelBank"),
    ("name: m\nfinetuners: forgetful\nscorer: mcm\n", None,
     "Fine-tuner 'forgetful' returned NoneType from finetune(), not a TextHead"),
])
def test_a_component_returning_the_wrong_type_is_one_line(registry, colour_suite, tmp_path,
                                                          method, returned, message):
    from oodbench.errors import PluginError

    registry.add_plugin(_bad_plugin(returned), "bad-returns")
    path = tmp_path / "m.yaml"
    path.write_text(method)
    with pytest.raises(PluginError) as info:
        run(RunRequest(str(path), str(colour_suite)), _ctx(tmp_path), registry)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "oodbench.contracts" in str(info.value)  # where the contract is documented


def test_label_generator_contract_declares_generations():
    from oodbench.contracts import LabelGenerator
    from oodbench.seeds import declared_generations as generations_of

    class Plain(LabelGenerator):
        name = "plain"

        def generate(self, env):
            raise AssertionError

    assert LabelGenerator.generations == 1 and "generations" not in Plain.param_fields()
    assert generations_of([("label_generator", Plain()), ("scorer", object())]) == 1
    plain = Plain()
    plain.generations = 0
    with pytest.raises(OODBenchError, match=r"plain\.generations must be an integer >= 1"):
        generations_of([("label_generator", plain)])


def test_the_per_image_scores_are_written_beside_the_record(registry, colour_suite, tmp_path):
    from oodbench.significance import auroc, read_scores, scores_path

    out = tmp_path / "results"
    record = run(RunRequest("mcm", str(colour_suite), output_dir=out), _ctx(tmp_path), registry)
    scores = read_scores(scores_path(Path(record["path"])))
    assert set(scores.ood) == set(record["metrics"])
    for name, entry in record["metrics"].items():  # the sidecar reproduces every AUROC
        assert auroc(scores.id[0], scores.ood[name][0]) == pytest.approx(entry["auroc"], abs=1e-9)
        assert scores.ood[name].shape == (1, entry["n_ood"])
    assert scores.id.shape == (1, next(iter(record["metrics"].values()))["n_id"])
    assert scores.images is not None and len(scores.images) == 64

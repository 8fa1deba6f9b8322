"""The suite parser and the shipped suite files: includes, one-line errors, expected counts,
the ImageNet-1K class lists and the openai-80 prompt ensemble."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.cache import ArtifactCache
from oodbench.data.sources import resolve_source
from oodbench.data.suite import load_suite
from oodbench.data.templates import OPENAI_80
from oodbench.errors import MissingDataError, OODBenchError
from oodbench.features import FeatureStore
from oodbench.paths import REPO_ROOT
from oodbench.types import RunContext
from tests.toy import ToyColourBackbone

SUITES = REPO_ROOT / "oodbench" / "suites"
CLASSLISTS = REPO_ROOT / "oodbench" / "classlists"
SHIPPED = sorted(p.stem for p in SUITES.glob("*.yaml") if not p.name.startswith("_"))
MOS_COUNTS = {"iNaturalist": 10000, "SUN": 10000, "Places": 10000, "Textures": 5640}


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = textwrap.dedent("""\
    name: {name}
    id:
      classes: [a, b]
      test: {{type: imagefolder, root: /nowhere}}
    ood:
      - {{name: x, source: {{type: imagefolder, root: /nowhere}}}}
    """)


def _error(path: Path) -> str:
    with pytest.raises(OODBenchError) as info:
        load_suite(path)
    text = str(info.value)
    assert "\n" not in text, text
    return text


# -- the shipped files ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_suite_parses(name: str) -> None:
    suite = load_suite(SUITES / f"{name}.yaml")
    assert suite.name == name and suite.classes and suite.ood
    for source in [suite.id_test, *(s.source for s in suite.ood)]:
        assert source["type"] in ("imagefolder", "hf", "offline")
    if suite.id_test["type"] != "offline":  # a real ID set says how to get it
        assert suite.id_test.get("obtain")


def test_food101_parses_with_counts() -> None:
    suite = load_suite(SUITES / "food101.yaml")
    assert len(suite.classes) == 50 and suite.task == "fine-grained"
    (near,) = [s for s in suite.ood if s.group == "near"]
    assert len(near.source["labels"]) == 51
    assert not set(near.source["labels"]) & set(suite.id_test["labels"])
    # Food-101: 250 test and 750 train images per class
    assert suite.id_test["expected_count"] == 250 * 50
    assert suite.id_train is not None and suite.id_train["expected_count"] == 750 * 50
    assert near.source["expected_count"] == 250 * 51
    assert {s.name: s.source["expected_count"] for s in suite.ood if s.group == "far"} == MOS_COUNTS


def test_imagenet_suites_have_published_counts() -> None:
    far = load_suite(SUITES / "imagenet-far.yaml")
    assert far.id_test["expected_count"] == 50000
    assert {s.name: s.source["expected_count"] for s in far.ood} == MOS_COUNTS
    openood = load_suite(SUITES / "imagenet-openood.yaml")
    counts = {s.name: s.source.get("expected_count") for s in openood.ood}
    assert counts == {"SSB-hard": 49000, "NINCO": 5879, "iNaturalist": None, "Textures": 5640,
                      "OpenImage-O": 15869, "ImageNet-O": 2000}
    # OpenOOD v1.5's own groups; ImageNet-O beside them, outside the near/far averages
    assert openood.groups() == {"near": ["SSB-hard", "NINCO"],
                                "far": ["iNaturalist", "Textures", "OpenImage-O"],
                                "extra": ["ImageNet-O"]}
    # ImageNet val: 50 images per class
    for name, counts in (("imagenet10-vs-20", (500, 1000)), ("imagenet20-vs-10", (1000, 500))):
        suite = load_suite(SUITES / f"{name}.yaml")
        assert (suite.id_test["expected_count"], suite.ood[0].source["expected_count"]) == counts
    assert load_suite(SUITES / "imagenet100-far.yaml").id_test["expected_count"] == 5000


def test_imagenet1k_class_lists_ship_with_the_suite(monkeypatch) -> None:
    names = _lines(CLASSLISTS / "imagenet1k_names.txt")
    wnids = _lines(CLASSLISTS / "imagenet1k_wnids.txt")
    assert len(names) == len(set(names)) == 1000
    assert names[:3] == ["tench", "goldfish", "great white shark"] and names[-1] == "toilet paper"
    assert (names[657], names[744], names[836], names[837]) == \
        ("missile", "projectile", "sunglass", "sunglasses")
    assert len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    for subset in ("imagenet10", "imagenet20", "imagenet100"):
        assert set(_lines(CLASSLISTS / f"{subset}_wnids.txt")) <= set(wnids)
    monkeypatch.setitem(sys.modules, "open_clip", None)  # no runtime fallback to open_clip
    suite = load_suite(SUITES / "imagenet-far.yaml")
    assert list(suite.classes) == names and suite.id_test["class_dirs"] == wnids


def test_imagenet1k_names_are_open_clips_with_duplicates_made_distinct() -> None:
    metadata = pytest.importorskip("open_clip.zero_shot_metadata")
    names = _lines(CLASSLISTS / "imagenet1k_names.txt")
    differ = [i for i, (a, b) in enumerate(zip(names, metadata.IMAGENET_CLASSNAMES, strict=True))
              if a != b]
    assert differ == [744, 836]


# -- openai-80 ------------------------------------------------------------------------------------
def test_openai_80_templates() -> None:
    assert len(OPENAI_80) == len(set(OPENAI_80)) == 80
    assert all(t.count("{}") == 1 for t in OPENAI_80)
    metadata = pytest.importorskip("open_clip.zero_shot_metadata")
    assert list(OPENAI_80) == [t("{}") for t in metadata.OPENAI_IMAGENET_TEMPLATES]


def test_openai_80_is_selectable_in_a_suite_including_a_shipped_one(tmp_path) -> None:
    path = _write(tmp_path, "my-imagenet", f"""
        name: my-imagenet
        include: {SUITES / 'imagenet-far.yaml'}
        prompts: openai-80
        """)
    suite = load_suite(path)
    assert suite.prompts == OPENAI_80
    # {{file: ...}} of the included files resolve next to them, not next to this suite
    assert len(suite.classes) == 1000 and [s.name for s in suite.ood] == list(MOS_COUNTS)


def _letters(texts: list[str]) -> torch.Tensor:
    """[N, 8] unnormalised text vectors whose length grows with the text."""
    return torch.tensor([[t.count(ch) for ch in "aeiost "] + [len(t)] for t in texts],
                        dtype=torch.float32)


class _LetterBackbone(ToyColourBackbone):
    """Text embeddings that depend on the template (the colour toy's do not)."""

    def encode_texts(self, texts):
        return torch.nn.functional.normalize(_letters(list(texts)), dim=-1)


def test_prompt_ensemble_is_mean_of_normalised_embeddings_renormalised(tmp_path) -> None:
    backbone = _LetterBackbone()
    backbone.load(torch.device("cpu"))
    store = FeatureStore(ArtifactCache(tmp_path))
    labels = ["red", "green", "blue"]
    out = store.label_embeddings(backbone, labels, list(OPENAI_80), RunContext())
    raw = torch.stack([_letters([t.format(c) for c in labels]) for t in OPENAI_80])  # [80, C, D]
    normalise = torch.nn.functional.normalize
    expected = normalise(normalise(raw, dim=-1).mean(0), dim=-1)
    assert out.shape == (3, backbone.embed_dim)
    assert torch.allclose(out, expected, atol=1e-5)
    # averaging before normalising (long prompts weigh more) would give other embeddings
    assert not torch.allclose(out, normalise(raw.mean(0), dim=-1), atol=1e-4)


# -- include --------------------------------------------------------------------------------------
def test_include_merges_and_overrides(tmp_path) -> None:
    _write(tmp_path, "_base", """
        version: 3
        description: base
        id:
          name: base-id
          classes: [a, b]
          test: {type: imagefolder, root: /base}
        prompts: ["a {}."]
        ood:
          - {name: x, source: {type: imagefolder, root: /x}}
        """)
    path = _write(tmp_path, "child", """
        name: child
        include: _base.yaml
        id:
          classes: [c, d, e]
        task: near
        """)
    suite = load_suite(path)
    assert (suite.version, suite.description, suite.task) == (3, "base", "near")
    assert suite.classes == ("c", "d", "e") and suite.id_name == "base-id"
    assert suite.id_test["root"] == "/base" and suite.prompts == ("a {}.",)


def test_include_cycle_is_one_clear_line(tmp_path) -> None:
    _write(tmp_path, "a", "include: b.yaml\n" + MINIMAL.format(name="a"))
    _write(tmp_path, "b", "include: a.yaml\n")
    text = _error(tmp_path / "a.yaml")
    assert "include cycle: a.yaml -> b.yaml -> a.yaml" in text


def test_self_include_and_missing_include(tmp_path) -> None:
    _write(tmp_path, "me", "include: me.yaml\n" + MINIMAL.format(name="me"))
    assert "include cycle: me.yaml -> me.yaml" in _error(tmp_path / "me.yaml")
    _write(tmp_path, "lost", "include: nowhere.yaml\n" + MINIMAL.format(name="lost"))
    assert "nowhere.yaml does not exist (included by lost.yaml)" in _error(tmp_path / "lost.yaml")


# -- one-line errors ------------------------------------------------------------------------------
def test_minimal_suite_parses(tmp_path) -> None:
    suite = load_suite(_write(tmp_path, "ok", MINIMAL.format(name="ok")))
    assert suite.classes == ("a", "b") and suite.ood[0].group == "far"


@pytest.mark.parametrize(("text", "message"), [
    ("name: bad\nid: [unclosed\n", "is not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("name: bad\nood: []\n", "missing field 'id'"),
    ("name: bad\nid: {classes: [a]}\nood: [{name: x, source: {type: hf}}]\n",
     "missing field 'id.test'"),
    ("name: bad\nid: {test: {type: hf}}\nood: [{name: x, source: {type: hf}}]\n",
     "missing field 'id.classes'"),
    ("name: bad\nid: {classes: [a], test: {type: hf}}\n", "missing field 'ood'"),
    ("name: bad\nid: {classes: [a], test: {type: hf}}\nood: [{name: x}]\n",
     "missing field 'ood[0].source'"),
    ("name: bad\nid: {classes: [a], test: {type: hf}}\nood: [{source: {type: hf}}]\n",
     "missing field 'ood[0].name'"),
    ("name: bad\nid: {classes: [a], test: {type: hf}}\nood: []\n",
     "ood must be a non-empty list of OOD sets"),
])
def test_malformed_or_incomplete_suite_is_one_line(tmp_path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    assert message in _error(tmp_path / "bad.yaml")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("name: {name}", "name: {name}\nprompt: ['a {{}}']", "suite bad.yaml: unknown field 'prompt' "
     "(did you mean 'prompts'?); allowed: name, version, description, task"),
    ("  classes: [a, b]", "  classes: [a, b]\n  clases: [c]",
     "suite bad.yaml: unknown field 'id.clases' (did you mean 'classes'?); allowed: name, classes, "
     "test, train; fix the suite file."),
    ("{{name: x, source:", "{{name: x, grop: near, source:",
     "unknown field 'ood[0].grop' (did you mean 'group'?)"),
    ("root: /nowhere}}}}", "root: /nowhere, expected: 3}}}}",
     "unknown field 'ood[0].source.expected' (did you mean 'expected_count'?)"),
    ("root: /nowhere}}}}", "root: /nowhere, split: test}}}}",
     "unknown field 'ood[0].source.split'; allowed: type, obtain, expected_count, root, "
     "class_dirs"),
    ("root: /nowhere}}}}", "root: /nowhere, expected_count: -3}}}}",
     "expected_count must be a positive integer, got -3"),
    ("{{name: x, source:", "{{name: x, group: medium, source:",
     "ood[0].group must be one of 'near', 'far', 'extra', got 'medium'"),
    ("name: {name}", "name: {name}\nprompts: ['a photo']", "must hold exactly one '{{}}'"),
    ("  classes: [a, b]", "  classes: {{from: open_clip-imagenet}}",
     "expected a list, {{file: PATH}}"),
    ("name: {name}", "name: other", "must match the file name"),
])
def test_unknown_keys_and_bad_values_are_one_line(tmp_path, old: str, new: str,
                                                  message: str) -> None:
    assert old in MINIMAL
    (tmp_path / "bad.yaml").write_text(MINIMAL.replace(old, new).format(name="bad"))
    assert message.replace("{{", "{").replace("}}", "}") in _error(tmp_path / "bad.yaml")


# -- expected_count -------------------------------------------------------------------------------
def _images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(folder / f"{i}.png")


def test_imagefolder_expected_count_is_checked(tmp_path) -> None:
    _images(tmp_path / "ood", 3)
    spec: dict[str, Any] = {"type": "imagefolder", "root": str(tmp_path / "ood"),
                            "obtain": "unpack it there"}
    plain = resolve_source(spec, "set", None)
    assert len(resolve_source({**spec, "expected_count": 3}, "set", None)) == 3
    # the published count is a check, not part of what is read: same cache key
    assert resolve_source({**spec, "expected_count": 3}, "set", None).fingerprint == \
        plain.fingerprint
    with pytest.raises(MissingDataError) as info:
        resolve_source({**spec, "expected_count": 5}, "set", None)
    text = str(info.value)
    assert "\n" not in text and "has 3 images under" in text and "expected 5" in text
    assert text.endswith("To obtain it: unpack it there")


def test_hf_expected_count_counts_the_selected_classes(monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr("oodbench.data.hub_source.prefer_offline_when_unreachable", lambda: True)
    labels = [0, 1, 2, 0, 1, 2, 0]
    generated = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (4, 4)) for _ in labels], "label": labels},
        features=datasets.Features({"image": datasets.Image(),
                                    "label": datasets.ClassLabel(num_classes=3)}))
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: generated)
    spec = {"type": "hf", "id": "someone/food", "split": "validation", "labels": [0, 2]}
    images = resolve_source({**spec, "expected_count": 5}, "food-2", ["a", "c"])
    assert len(images) == 5 and np.array_equal(np.unique(images.labels), [0, 1])
    with pytest.raises(MissingDataError) as info:
        resolve_source({**spec, "expected_count": 6}, "food-2", None)
    assert "\n" not in str(info.value) and "has 5 images in Hugging Face dataset 'someone/food'" \
        in str(info.value)


# -- the extra group ------------------------------------------------------------------------------
def test_extra_sets_are_reported_but_not_averaged(registry, colour_suite, tmp_path) -> None:
    from oodbench.results import validate_record
    from oodbench.runner import RunRequest, run

    text = colour_suite.read_text().replace("name: grey, group: far,", "name: grey, group: extra,")
    assert "group: extra" in text
    colour_suite.write_text(text)
    record = run(RunRequest("mcm", str(colour_suite)),
                 RunContext(cache_dir=tmp_path / "cache", batch_size=16), registry)
    validate_record(record, "the run")
    grey = record["metrics"]["grey"]
    assert grey["group"] == "extra" and grey["auroc"] > 0.9
    assert set(record["groups"]) == {"near"} and record["groups"]["near"]["sets"] == 1

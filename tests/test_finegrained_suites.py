"""The fine-grained suites cub200, cars196 and pets37 (EOE's ID / near-OOD class splits).

No real dataset is reachable here, so the Hugging Face source is fed small generated datasets
with the same columns and label ids as the hub copies the suites name; the missing-data path is
checked with the hub switched off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

import oodbench.cli as cli_module
import oodbench.plugins as plugins_module
from oodbench.data.sources import resolve_source
from oodbench.data.suite import Suite, load_suite
from oodbench.errors import OfflineError, OODBenchError
from oodbench.paths import REPO_ROOT

SUITES = REPO_ROOT / "oodbench" / "suites"
CLASSLISTS = REPO_ROOT / "oodbench" / "classlists"
MOS_FAR = ["iNaturalist", "SUN", "Places", "Textures"]


@dataclass(frozen=True)
class Case:
    suite: str
    hf_id: str
    all_names: str  # every class of the dataset, in the dataset's label order
    n_all: int
    n_id: int
    n_near: int
    first_id: str  # EOE's stored draw starts with this class
    label_anchors: tuple[tuple[int, str], ...]  # (dataset label, name) fixed by the dataset


CASES = [
    Case("cub200", "bentrevett/caltech-ucsd-birds-200-2011", "cub200_names.txt", 200, 100, 100,
         "Laysan Albatross",
         ((0, "Black footed Albatross"), (1, "Laysan Albatross"),
          (125, "Nelson Sharp tailed Sparrow"), (199, "Common Yellowthroat"))),
    Case("cars196", "tanganke/stanford_cars", "cars196_names.txt", 196, 98, 98,
         "McLaren MP4-12C Coupe 2012",
         ((0, "AM General Hummer SUV 2000"), (5, "Acura Integra Type R 2001"),
          (195, "smart fortwo Convertible 2012"))),
    Case("pets37", "timm/oxford-iiit-pet", "pets37_names.txt", 37, 18, 19, "Havanese",
         ((0, "Abyssinian"), (1, "American Bulldog"), (5, "Bengal"), (36, "Yorkshire Terrier"))),
]
IDS = [c.suite for c in CASES]


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _near(suite: Suite) -> Any:
    (near,) = [s for s in suite.ood if s.group == "near"]
    return near


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_class_lists_have_the_datasets_classes_in_label_order(case: Case) -> None:
    names = _lines(CLASSLISTS / case.all_names)
    assert len(names) == case.n_all == len(set(names))
    for label, name in case.label_anchors:
        assert names[label] == name


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_suite_parses_with_eoes_split(case: Case) -> None:
    suite = load_suite(SUITES / f"{case.suite}.yaml")
    names = _lines(CLASSLISTS / case.all_names)
    assert suite.name == case.suite and suite.task == "fine-grained"
    assert len(suite.classes) == case.n_id and suite.classes[0] == case.first_id
    id_labels = suite.id_test["labels"]
    near_labels = _near(suite).source["labels"]
    assert len(id_labels) == case.n_id and len(near_labels) == case.n_near
    # the two halves partition the dataset's classes; the ID labels name the ID classes in order
    assert sorted(id_labels + near_labels) == list(range(case.n_all))
    assert [names[i] for i in id_labels] == list(suite.classes)
    assert suite.id_train is not None and suite.id_train["labels"] == id_labels
    for spec, split in ((suite.id_test, "test"), (suite.id_train, "train"),
                        (_near(suite).source, "test")):
        assert (spec["type"], spec["id"], spec["split"]) == ("hf", case.hf_id, split)
        assert spec["image"] == "image" and spec["label"] == "label"
    assert suite.groups() == {"near": [_near(suite).name], "far": MOS_FAR}
    assert all("{}" in p for p in suite.prompts)


def test_cub_split_is_eoes_draw_in_class_id_order() -> None:
    suite = load_suite(SUITES / "cub200.yaml")
    assert suite.id_test["labels"] == sorted(suite.id_test["labels"])
    assert suite.id_test["labels"][:4] == [1, 3, 4, 6]


def _fake_hub(case: Case, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Replace datasets.load_dataset by a tiny generated copy: two images per class, shuffled."""
    import datasets

    names = _lines(CLASSLISTS / case.all_names)
    labels = [label for label in range(case.n_all) for _ in range(2)]
    random.Random(0).shuffle(labels)
    images = [Image.new("RGB", (4, 4), (label, 255 - label, 7)) for label in labels]
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=names)})
    generated = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    calls: list[tuple[str, str]] = []

    def load_dataset(path: str, name: str | None = None, split: str | None = None,
                     **_: Any) -> Any:
        calls.append((path, str(split)))
        return generated

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sources_select_each_half_from_generated_data(case: Case, monkeypatch) -> None:
    calls = _fake_hub(case, monkeypatch)
    suite = load_suite(SUITES / f"{case.suite}.yaml")
    names = _lines(CLASSLISTS / case.all_names)

    id_images = resolve_source(suite.id_test, suite.id_name, suite.classes)
    assert len(id_images) == 2 * case.n_id
    raw = list(id_images.hf_dataset["label"])  # the dataset's own label of each kept image
    assert [names[r] for r in raw] == [suite.classes[i] for i in id_images.labels.tolist()]
    assert sorted(set(id_images.labels.tolist())) == list(range(case.n_id))
    first = id_images.open(0)
    assert first.mode == "RGB" and first.getpixel((0, 0))[0] == raw[0]

    near = _near(suite)
    near_images = resolve_source(near.source, near.name, None)
    assert len(near_images) == 2 * case.n_near and set(near_images.labels.tolist()) == {-1}
    assert set(list(near_images.hf_dataset["label"])) == set(near.source["labels"])
    assert not set(list(near_images.hf_dataset["label"])) & set(suite.id_test["labels"])
    assert calls == [(case.hf_id, "test"), (case.hf_id, "test")]


@pytest.fixture
def hub_off(monkeypatch, tmp_path) -> Path:
    """No hub (as HF_HUB_OFFLINE=1 sets it) and an empty data folder."""
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("OODBENCH_DATA", str(data))
    return data


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_missing_hub_data_is_one_clear_line(case: Case, hub_off) -> None:
    suite = load_suite(SUITES / f"{case.suite}.yaml")
    with pytest.raises(OfflineError) as info:
        resolve_source(suite.id_test, suite.id_name, suite.classes)
    text = str(info.value)
    assert "\n" not in text and case.hf_id in text and "split test" in text
    with pytest.raises(OODBenchError, match=r"Dataset 'Textures' is missing: folder .* does not"):
        resolve_source(suite.ood[-1].source, suite.ood[-1].name, None)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_suites_show_says_what_is_missing(case: Case, hub_off, registry, monkeypatch) -> None:
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    monkeypatch.setattr(cli_module, "console", Console(width=2000, color_system=None))
    result = CliRunner().invoke(cli_module.app, ["suites", "show", case.suite])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"ID classes ({case.n_id}): {case.first_id}," in out
    rows = [line for line in out.splitlines() if "missing:" in line]
    assert len(rows) == 3 + len(MOS_FAR)  # ID test, ID train, near, four far sets
    hub_rows = [row for row in rows if case.hf_id in row]
    assert len(hub_rows) == 3
    # the one-line offline error, ending with the suite's `obtain` text (or the generic hint)
    assert all("offline and it is not in the local cache" in row for row in hub_rows)
    for name in MOS_FAR:
        (row,) = [r for r in rows if f"Dataset '{name}' is missing" in r]
        assert str(hub_off) in row and "To obtain it: see imagenet-far" in row
    assert "present" not in out


def test_run_without_data_stops_on_one_line(hub_off, registry, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    result = CliRunner().invoke(cli_module.app, ["run", "-m", "mcm", "-s", "pets37",
                                                 "-o", str(tmp_path / "out"), "--device", "cpu",
                                                 "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.strip()]
    assert line.startswith("error: Dataset 'pets-18-id'") and "timm/oxford-iiit-pet" in line
    assert not (tmp_path / "out").exists()


# -- the far suites: the whole fine-grained dataset as ID vs the four MOS sets (MCM / EOE tables)


@dataclass(frozen=True)
class FarCase:
    suite: str
    near_suite: str  # the EOE-split suite on the same data
    all_names: str
    n_all: int
    test_count: int


FAR_CASES = [
    FarCase("cub200-far", "cub200", "cub200_names.txt", 200, 5794),
    FarCase("cars196-far", "cars196", "cars196_names.txt", 196, 8041),
    FarCase("food101-far", "food101", "food101_names.txt", 101, 25250),
    FarCase("pets37-far", "pets37", "pets37_names.txt", 37, 3669),
]
FAR_IDS = [c.suite for c in FAR_CASES]


@pytest.mark.parametrize("case", FAR_CASES, ids=FAR_IDS)
def test_far_suite_takes_every_class_as_id(case: FarCase) -> None:
    suite = load_suite(SUITES / f"{case.suite}.yaml")
    near = load_suite(SUITES / f"{case.near_suite}.yaml")
    assert suite.name == case.suite and suite.task == "far"
    assert list(suite.classes) == _lines(CLASSLISTS / case.all_names)
    assert len(suite.classes) == case.n_all
    # the whole split: no label filter, the full test-split count
    assert "labels" not in suite.id_test and suite.id_train and "labels" not in suite.id_train
    assert suite.id_test["expected_count"] == case.test_count
    # same data, prompt and EOE type word as the near suite; only the class selection differs
    for key in ("type", "id", "split", "image", "label"):
        assert suite.id_test[key] == near.id_test[key]
        assert suite.id_train[key] == near.id_train[key]  # type: ignore[index]
    assert suite.prompts == near.prompts == ("a photo of a {}",)
    assert suite.class_type == near.class_type and suite.backbone == "clip-b16"
    # far = exactly the near suite's four MOS sets, same folders and counts
    assert suite.groups() == {"far": MOS_FAR}
    near_far = {s.name: s.source for s in near.ood if s.group == "far"}
    for ood in suite.ood:
        for key in ("type", "root", "expected_count"):
            assert ood.source[key] == near_far[ood.name][key]


@pytest.mark.parametrize("case", FAR_CASES, ids=FAR_IDS)
def test_far_suite_reads_every_image_of_the_split(case: FarCase, monkeypatch) -> None:
    hf_id = load_suite(SUITES / f"{case.suite}.yaml").id_test["id"]
    calls = _fake_hub(Case(case.suite, hf_id, case.all_names, case.n_all, 0, 0, "", ()),
                      monkeypatch)
    suite = load_suite(SUITES / f"{case.suite}.yaml")
    spec = {k: v for k, v in suite.id_test.items() if k != "expected_count"}  # 2 per class here
    images = resolve_source(spec, suite.id_name, suite.classes)
    assert len(images) == 2 * case.n_all
    raw = list(images.hf_dataset["label"])
    assert images.labels.tolist() == raw  # label i is class i: the list is in dataset order
    assert calls == [(hf_id, spec["split"])]

"""Hugging Face sources check the suite's class names against the dataset's ClassLabel names.

The hub's ``ethz/food101`` orders its labels as the `datasets` Food-101 builder's names list, which
is not torchvision's sorted-folder order: there 16 = cheesecake and 17 = cheese_plate. A tiny fake
copy with a real ``datasets.ClassLabel`` of those 101 names stands in for the hub here.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from oodbench.data.sources import normalise_class_name, resolve_source
from oodbench.data.suite import load_suite
from oodbench.errors import OODBenchError
from oodbench.paths import REPO_ROOT

datasets = pytest.importorskip("datasets")

SUITES = REPO_ROOT / "oodbench" / "suites"
CLASSLISTS = REPO_ROOT / "oodbench" / "classlists"

# ethz/food101's ClassLabel names, in label-id order (the hub's Food-101 builder, `_NAMES`)
HUB_FOOD101 = [
    "apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad",
    "beignets", "bibimbap", "bread_pudding", "breakfast_burrito", "bruschetta", "caesar_salad",
    "cannoli", "caprese_salad", "carrot_cake", "ceviche", "cheesecake", "cheese_plate",
    "chicken_curry", "chicken_quesadilla", "chicken_wings", "chocolate_cake", "chocolate_mousse",
    "churros", "clam_chowder", "club_sandwich", "crab_cakes", "creme_brulee", "croque_madame",
    "cup_cakes", "deviled_eggs", "donuts", "dumplings", "edamame", "eggs_benedict", "escargots",
    "falafel", "filet_mignon", "fish_and_chips", "foie_gras", "french_fries", "french_onion_soup",
    "french_toast", "fried_calamari", "fried_rice", "frozen_yogurt", "garlic_bread", "gnocchi",
    "greek_salad", "grilled_cheese_sandwich", "grilled_salmon", "guacamole", "gyoza", "hamburger",
    "hot_and_sour_soup", "hot_dog", "huevos_rancheros", "hummus", "ice_cream", "lasagna",
    "lobster_bisque", "lobster_roll_sandwich", "macaroni_and_cheese", "macarons", "miso_soup",
    "mussels", "nachos", "omelette", "onion_rings", "oysters", "pad_thai", "paella", "pancakes",
    "panna_cotta", "peking_duck", "pho", "pizza", "pork_chop", "poutine", "prime_rib",
    "pulled_pork_sandwich", "ramen", "ravioli", "red_velvet_cake", "risotto", "samosa", "sashimi",
    "scallops", "seaweed_salad", "shrimp_and_grits", "spaghetti_bolognese", "spaghetti_carbonara",
    "spring_rolls", "steak", "strawberry_shortcake", "sushi", "tacos", "takoyaki", "tiramisu",
    "tuna_tartare", "waffles",
]
# EOE's Food-50 draw (Aboriginer/EOE data/Food-50/selected_50_classes.pkl), by class name
EOE_FOOD50 = [
    "prime_rib", "dumplings", "strawberry_shortcake", "frozen_yogurt", "seaweed_salad", "tiramisu",
    "red_velvet_cake", "omelette", "beef_carpaccio", "lasagna", "donuts", "sushi", "beignets",
    "chicken_wings", "carrot_cake", "gnocchi", "lobster_bisque", "spaghetti_bolognese",
    "greek_salad", "oysters", "caprese_salad", "panna_cotta", "shrimp_and_grits", "baby_back_ribs",
    "creme_brulee", "gyoza", "escargots", "churros", "grilled_cheese_sandwich", "scallops",
    "breakfast_burrito", "cheesecake", "huevos_rancheros", "cheese_plate", "steak", "apple_pie",
    "mussels", "crab_cakes", "pancakes", "pulled_pork_sandwich", "bruschetta", "hot_dog",
    "risotto", "chicken_curry", "paella", "cannoli", "eggs_benedict", "fried_calamari",
    "french_fries", "lobster_roll_sandwich",
]
# timm/oxford-iiit-pet's ClassLabel names (its dataset card), in label-id order
HUB_PETS37 = [
    "abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "bengal", "birman", "bombay", "boxer", "british_shorthair", "chihuahua", "egyptian_mau",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees", "havanese",
    "japanese_chin", "keeshond", "leonberger", "maine_coon", "miniature_pinscher", "newfoundland",
    "persian", "pomeranian", "pug", "ragdoll", "russian_blue", "saint_bernard", "samoyed",
    "scottish_terrier", "shiba_inu", "siamese", "sphynx", "staffordshire_bull_terrier",
    "wheaten_terrier", "yorkshire_terrier",
]


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _fake_hub(monkeypatch: pytest.MonkeyPatch, names: list[str]) -> Any:
    """datasets.load_dataset returns two tiny images per class, labelled with a real ClassLabel."""
    monkeypatch.setattr("oodbench.data.hub_source.prefer_offline_when_unreachable", lambda: True)
    labels = [label for label in range(len(names)) for _ in range(2)]
    random.Random(0).shuffle(labels)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=names)})
    generated = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (4, 4), (label, 0, 0)) for label in labels],
         "label": labels}, features=features)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: generated)
    return generated


def _tiny(spec: dict[str, Any]) -> dict[str, Any]:
    """The suite's source without the published count (the fake copy has 2 images per class)."""
    return {k: v for k, v in spec.items() if k != "expected_count"}


def test_food101_class_list_is_the_hubs_label_order() -> None:
    ours = _lines(CLASSLISTS / "food101_names.txt")
    assert [normalise_class_name(n) for n in ours] == \
        [normalise_class_name(n) for n in HUB_FOOD101]
    assert (ours[16], ours[17]) == ("cheesecake", "cheese plate")


def test_food101_id_set_is_eoes_draw_by_name() -> None:
    suite = load_suite(SUITES / "food101.yaml")
    assert [normalise_class_name(n) for n in suite.classes] == \
        [normalise_class_name(n) for n in EOE_FOOD50]
    # the `labels:` ids are hub ids: each names the same class as the suite's list
    assert [HUB_FOOD101[i] for i in suite.id_test["labels"]] == EOE_FOOD50
    assert suite.id_train is not None and suite.id_train["labels"] == suite.id_test["labels"]
    (near,) = [s for s in suite.ood if s.group == "near"]
    assert sorted(suite.id_test["labels"] + near.source["labels"]) == list(range(101))


def test_corrected_food101_suite_loads_against_hub_names(monkeypatch) -> None:
    generated = _fake_hub(monkeypatch, HUB_FOOD101)
    suite = load_suite(SUITES / "food101.yaml")
    for spec in (suite.id_test, suite.id_train):
        images = resolve_source(_tiny(spec), suite.id_name, suite.classes)
        assert len(images) == 2 * 50
        raw = list(images.hf_dataset["label"])  # the hub label id of each kept image
        hub_names = [generated.features["label"].int2str(r) for r in raw]
        ours = [suite.classes[i] for i in images.labels.tolist()]
        assert [normalise_class_name(n) for n in hub_names] == \
            [normalise_class_name(n) for n in ours]
        assert "cheesecake" in ours and "cheese plate" in ours


def test_food101_with_16_and_17_swapped_stops_on_one_line(monkeypatch) -> None:
    _fake_hub(monkeypatch, HUB_FOOD101)
    suite = load_suite(SUITES / "food101.yaml")
    swapped = [{16: 17, 17: 16}.get(i, i) for i in suite.id_test["labels"]]  # torchvision ids
    with pytest.raises(OODBenchError) as info:
        resolve_source({**_tiny(suite.id_test), "labels": swapped}, suite.id_name, suite.classes)
    text = str(info.value)
    assert "\n" not in text and type(info.value) is not OODBenchError
    assert "'ethz/food101'" in text and "label id 17" in text
    assert "'cheese_plate'" in text and "'cheesecake'" in text and "fix" in text


def test_full_class_list_with_a_swap_is_caught_at_the_first_mismatch(monkeypatch) -> None:
    _fake_hub(monkeypatch, HUB_FOOD101)
    names = _lines(CLASSLISTS / "food101_names.txt")
    spec = {"type": "hf", "id": "ethz/food101", "split": "validation"}
    assert len(resolve_source(spec, "food-101", names)) == 2 * 101
    torchvision_order = list(names)
    torchvision_order[16], torchvision_order[17] = names[17], names[16]
    with pytest.raises(OODBenchError, match=r"label id 16 is 'cheesecake' there .* "
                                            r"'cheese plate'") as info:
        resolve_source(spec, "food-101", torchvision_order)
    assert "\n" not in str(info.value)
    with pytest.raises(OODBenchError, match=r"names 100 classes .* has 101"):
        resolve_source(spec, "food-101", names[:100])


def test_ood_sets_and_nameless_labels_are_not_checked(monkeypatch) -> None:
    _fake_hub(monkeypatch, HUB_FOOD101)
    suite = load_suite(SUITES / "food101.yaml")
    (near,) = [s for s in suite.ood if s.group == "near"]
    assert len(resolve_source(_tiny(near.source), near.name, None)) == 2 * 51
    _fake_hub(monkeypatch, [str(i) for i in range(3)])  # ClassLabel(num_classes=3): no names
    spec = {"type": "hf", "id": "someone/food", "split": "validation", "labels": [0, 2]}
    assert len(resolve_source(spec, "food-2", ["a", "c"])) == 4


def test_normalisation_is_case_underscore_and_cub_prefix() -> None:
    assert normalise_class_name("cheese_plate") == normalise_class_name("Cheese Plate")
    assert normalise_class_name("001.Black_footed_Albatross") == \
        normalise_class_name("Black footed Albatross")
    assert normalise_class_name("Chevrolet Silverado 1500 Hybrid Crew Cab 2012") == \
        "chevrolet silverado 1500 hybrid crew cab 2012"
    assert normalise_class_name("cheesecake") != normalise_class_name("cheese plate")


@pytest.mark.parametrize("suite_name, hub_names", [
    ("pets37", HUB_PETS37),
    # bentrevett/caltech-ucsd-birds-200-2011: CUB's classes.txt form, "001.Black_footed_Albatross"
    ("cub200", [f"{i + 1:03d}.{n.replace(' ', '_')}"
                for i, n in enumerate(_lines(CLASSLISTS / "cub200_names.txt"))]),
])
def test_other_finegrained_suites_accept_their_hubs_spelling(suite_name, hub_names,
                                                             monkeypatch) -> None:
    _fake_hub(monkeypatch, hub_names)
    suite = load_suite(SUITES / f"{suite_name}.yaml")
    images = resolve_source(_tiny(suite.id_test), suite.id_name, suite.classes)
    assert len(images) == 2 * len(suite.classes)
    shifted = [hub_names[-1], *hub_names[:-1]]  # every id one off: caught
    _fake_hub(monkeypatch, shifted)
    with pytest.raises(OODBenchError, match="class names do not match"):
        resolve_source(_tiny(suite.id_test), suite.id_name, suite.classes)

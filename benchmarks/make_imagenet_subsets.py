"""Write the ImageNet subset suites' class names, as MCM's code (deeplearning-wisc/MCM) names them.

ImageNet-10/20 are MCM's hard-OOD splits (wnids in METHODS.md). MCM does not take their names from
WordNet: ``utils/common.py`` (``obtain_ImageNet10_classes`` / ``obtain_ImageNet20_classes``)
spells them out by hand ("horse" for n02389026 where WordNet's first lemma is "sorrel",
"brambling bird", "sailboat" for n04147183, ...) and returns them in sorted-wnid order, the class
order of torchvision's ImageFolder. The two tables below are those names (data, not code).

ImageNet-100 is MCM's ``data/ImageNet100/class_list.txt`` (kept in that order); MCM names each
class by its entry in ``data/ImageNet/imagenet_class_index.json`` with "_" made " ". For these
100 wnids that entry equals the WordNet synset's first lemma (checked name by name), so that is
what is written here.

Names and wnids stay aligned line by line: imagenet{10,20,100}_wnids.txt are read and each wnid's
name is written on the same line of imagenet{10,20,100}_names.txt. Run after
`oodbench data fetch-wordnet` (ImageNet-100 only needs it):
python benchmarks/make_imagenet_subsets.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
CLASSLISTS = HERE.parent / "oodbench" / "classlists"  # package data, beside the suites

# MCM utils/common.py, obtain_ImageNet10_classes (name -> wnid there; wnid -> name here)
MCM_IMAGENET10 = {
    "n04552348": "warplane", "n04285008": "sports car", "n01530575": "brambling bird",
    "n02123597": "Siamese cat", "n02422699": "antelope", "n02107574": "swiss mountain dog",
    "n01641577": "bull frog", "n03417042": "garbage truck", "n02389026": "horse",
    "n03095699": "container ship",
}
# MCM utils/common.py, obtain_ImageNet20_classes
MCM_IMAGENET20 = {
    "n04147183": "sailboat", "n02951358": "canoe", "n02782093": "balloon", "n04389033": "tank",
    "n03773504": "missile", "n02917067": "bullet train", "n02317335": "starfish",
    "n01632458": "spotted salamander", "n01630670": "common newt", "n01631663": "eft",
    "n02391049": "zebra", "n01693334": "green lizard", "n01697457": "African crocodile",
    "n02120079": "Arctic fox", "n02114367": "timber wolf", "n02132136": "brown bear",
    "n03785016": "moped", "n04310018": "steam locomotive", "n04266014": "space shuttle",
    "n04252077": "snowmobile",
}


def wordnet_names(wnids: list[str]) -> list[str]:
    from oodbench.labels import wordnet

    nouns = wordnet.load_synsets()["n"]
    return [nouns[int(w[1:])].words[0] for w in wnids]


def names(subset: str, wnids: list[str]) -> list[str]:
    table = {"imagenet10": MCM_IMAGENET10, "imagenet20": MCM_IMAGENET20}.get(subset)
    if table is None:
        return wordnet_names(wnids)
    assert sorted(table) == sorted(wnids), f"{subset}: wnid list differs from MCM's"
    return [table[w] for w in wnids]


def main() -> None:
    for subset in ("imagenet10", "imagenet20", "imagenet100"):
        wnids = (CLASSLISTS / f"{subset}_wnids.txt").read_text().split()
        if subset != "imagenet100":  # MCM's ImageFolder order
            assert wnids == sorted(wnids), f"{subset}_wnids.txt must be sorted"
        out = CLASSLISTS / f"{subset}_names.txt"
        out.write_text("\n".join(names(subset, wnids)) + "\n")
        print(out, len(wnids))


if __name__ == "__main__":
    main()

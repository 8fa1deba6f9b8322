"""Write the ImageNet subset suites' class names from WordNet 3.0 (ImageNet ids are offsets).

ImageNet-10/20 are MCM's splits (listed in METHODS.md); ImageNet-100 is MCM's
data/ImageNet100/class_list.txt. Class name = the synset's first lemma. Run after
`oodbench data fetch-wordnet`: python benchmarks/make_imagenet_subsets.py
"""

from __future__ import annotations

from pathlib import Path

from oodbench.labels import wordnet

HERE = Path(__file__).parent


def names(wnids: list[str]) -> list[str]:
    nouns = wordnet.load_synsets()["n"]
    return [nouns[int(w[1:])].words[0] for w in wnids]


def main() -> None:
    for name in ("imagenet10", "imagenet20", "imagenet100"):
        wnids = (HERE / "classlists" / f"{name}_wnids.txt").read_text().split()
        out = HERE / "classlists" / f"{name}_names.txt"
        out.write_text("\n".join(names(wnids)) + "\n")
        print(out, len(wnids))


if __name__ == "__main__":
    main()

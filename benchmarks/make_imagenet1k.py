"""Write imagenet1k_names.txt and imagenet1k_wnids.txt (the ImageNet-1K suites' class lists).

Names: OpenAI's CLIP class names (their ImageNet zero-shot notebook), as open_clip ships them in
``open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES``, in class-index order. That list names two
pairs of classes alike; the second of each pair gets its WordNet synset's own head word, so all
1000 names differ: 744 n04008634 "projectile, missile" -> "projectile" (657 n03773504 stays
"missile") and 836 n04355933 "sunglass" -> "sunglass" (837 n04356056 stays "sunglasses").
Wnids: the 1000 ILSVRC-2012 synsets in class-index order (= sorted), from timm's
``timm/data/_info/imagenet_synsets.txt``. Run once: python benchmarks/make_imagenet1k.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "oodbench" / "classlists"  # package data
DISAMBIGUATE = {744: "projectile", 836: "sunglass"}


def main() -> None:
    import timm
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    names = [DISAMBIGUATE.get(i, name) for i, name in enumerate(IMAGENET_CLASSNAMES)]
    synsets = Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt"
    wnids = synsets.read_text().split()
    assert len(names) == len(set(names)) == 1000 and len(wnids) == 1000 and wnids == sorted(wnids)
    (HERE / "imagenet1k_names.txt").write_text("\n".join(names) + "\n")
    (HERE / "imagenet1k_wnids.txt").write_text("\n".join(wnids) + "\n")
    print(f"wrote {len(names)} names and {len(wnids)} wnids to {HERE}")


if __name__ == "__main__":
    main()

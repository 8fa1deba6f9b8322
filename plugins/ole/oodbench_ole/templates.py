"""Prompt templates for OLE's label embeddings: 64 CLIP-style templates and 64 "with" variants.

OLE embeds every label (ID and outlier) with a 128-prompt ensemble of two kinds: CLIP-style
"<rendering> of a {}" prompts and the same prompts with "with" in place of "of". This list is
our own: a small grammar over the vocabulary of CLIP's ImageNet prompt engineering (image
qualities, media, object adjectives), not the official file. The official prompts also keep
literal quote characters inside each prompt (a quirk inherited from CLIPN); ours have none.
"""

from __future__ import annotations

from collections.abc import Sequence

ARTICLES = ("a", "the")
# image qualities: "a {quality} photo of {article} {}."
QUALITIES = ("bad", "low resolution", "bright", "dark", "blurry", "cropped", "close-up",
             "black and white", "pixelated", "jpeg corrupted", "good")
# renderings: "{medium} of {article} {}."
MEDIA = ("a sculpture", "a rendering", "graffiti", "a tattoo", "a drawing", "a painting",
         "a doodle", "a sketch", "a rendition", "art")
# object adjectives: "a photo of {article} {adjective} {}."
ADJECTIVES = ("clean", "dirty", "cool", "nice", "weird", "large", "small")
OTHERS = ("a photo of a {}.", "a photo of the {}.", "a photo of one {}.", "a photo of many {}.",
          "a photo of my {}.", "itap of a {}.", "itap of the {}.", "a {} in a video game.")


def clip_style() -> list[str]:
    """The 64 CLIP-style templates (11x2 qualities + 10x2 media + 7x2 adjectives + 8 others)."""
    out = [f"a {q} photo of {a} {{}}." for q in QUALITIES for a in ARTICLES]
    out += [f"{m} of {a} {{}}." for m in MEDIA for a in ARTICLES]
    out += [f"a photo of {a} {adj} {{}}." for adj in ADJECTIVES for a in ARTICLES]
    return out + list(OTHERS)


def with_variant(template: str) -> str:
    """'a sketch of a {}.' -> 'a sketch with a {}.'; the video-game prompt is rephrased."""
    if template == "a {} in a video game.":
        return "a video game with a {}."
    return template.replace(" of ", " with ", 1)


NAMED: dict[str, list[str]] = {
    "clip64": clip_style(),
    "with64": [with_variant(t) for t in clip_style()],
}
NAMED["ole128"] = NAMED["clip64"] + NAMED["with64"]


# backbones whose text tower is too slow on a CPU for 128 prompts x ~10.8k labels (the offline
# mini backbone: ~400 texts/s on 2 cores, ~58 min); "auto" gives them the suite's prompts
CPU_SIZED_BACKBONES = frozenset({"mini", "mini-clipn"})


def resolve_templates(spec: str, suite_prompts: Sequence[str], backbone: str = "") -> list[str]:
    """A template set by name (auto, ole128, clip64, with64, suite) or a '|'-separated list.

    ``auto`` is ``ole128`` (the paper's prompt kinds) except on the offline mini backbone, where
    it is ``suite``: 1.4 M text encodings take about an hour on a 2-core CPU, the suite's few
    prompts take a minute. Every template must contain exactly one ``{}``; a typo in a name
    fails here, not after an hour of encoding.
    """
    spec = spec.strip()
    if spec == "auto":
        spec = "suite" if backbone in CPU_SIZED_BACKBONES else "ole128"
    if spec in NAMED:
        return list(NAMED[spec])
    if spec == "suite":
        templates = list(suite_prompts)
    elif "{}" in spec:
        templates = [t.strip() for t in spec.split("|") if t.strip()]
    else:
        names = ", ".join(["auto", *NAMED, "suite"])
        raise ValueError(f"unknown template set {spec!r}: use one of {names}, or templates "
                         f"containing {{}} separated by '|'")
    bad = [t for t in templates if t.count("{}") != 1]
    if bad or not templates:
        raise ValueError(f"each template needs exactly one {{}}; got {bad or templates!r}")
    return templates

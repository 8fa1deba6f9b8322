"""The regression reference of the committed image-tower weights: drawn images x fixed texts.

``weights/reference_similarity.json`` holds the cosine similarities of
:func:`synthetic_images` and :data:`REFERENCE_TEXTS`; the tests check that the mini backbone
reproduces them to 1e-4.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from PIL import Image

from oodbench_mini.model import DEFAULT_WEIGHTS

REFERENCE_TEXTS = (
    "a photo of a red circle.",
    "a photo of a blue square.",
    "a photo of a cat.",
    "a photo of a car.",
    "a drawing of a yellow star.",
    "a photo of a t-shirt.",
)
REFERENCE_FILE = DEFAULT_WEIGHTS.parent / "reference_similarity.json"


def synthetic_images() -> list[Image.Image]:
    """A few deterministic drawn images (no data download) for the regression reference."""
    from PIL import ImageDraw

    images = []
    specs = (
        ("ellipse", (220, 30, 30), "white"),
        ("rect", (30, 60, 220), "white"),
        ("star", (240, 200, 20), "white"),
        ("tshirt", (200, 200, 200), "black"),
    )
    for shape, colour, bg in specs:
        img = Image.new("RGB", (96, 80), bg)
        d = ImageDraw.Draw(img)
        if shape == "ellipse":
            d.ellipse((18, 10, 78, 70), fill=colour)
        elif shape == "rect":
            d.rectangle((20, 12, 76, 68), fill=colour)
        elif shape == "star":
            pts = [
                (
                    48 + (30 if i % 2 == 0 else 12) * math.cos(math.pi / 5 * i - math.pi / 2),
                    40 + (30 if i % 2 == 0 else 12) * math.sin(math.pi / 5 * i - math.pi / 2),
                )
                for i in range(10)
            ]
            d.polygon(pts, fill=colour)
        else:
            d.polygon(
                [
                    (28, 12),
                    (40, 8),
                    (56, 8),
                    (68, 12),
                    (84, 28),
                    (72, 36),
                    (66, 30),
                    (66, 72),
                    (30, 72),
                    (30, 30),
                    (24, 36),
                    (12, 28),
                ],
                fill=colour,
            )
        images.append(img)
    return images


def reference_similarity(backbone) -> list[list[float]]:
    """Cosine similarities [synthetic images x REFERENCE_TEXTS] under ``backbone``."""
    pre = backbone.preprocess()
    img = backbone.encode_images(torch.stack([pre(i) for i in synthetic_images()]))
    txt = backbone.encode_texts(list(REFERENCE_TEXTS))
    return (img @ txt.T).tolist()


def write_reference(weights: Path | str = "", path: Path | None = None) -> dict:
    """Store the reference similarity matrix that tests/test_mini.py checks to 1e-4."""
    from oodbench_mini.model import MiniBackbone

    torch.set_num_threads(2)
    backbone = MiniBackbone(weights=str(weights))
    backbone.load(torch.device("cpu"))
    path = path or backbone.weights_path.parent / REFERENCE_FILE.name
    ref = {
        "fingerprint": backbone.fingerprint(),
        "texts": list(REFERENCE_TEXTS),
        "images": "oodbench_mini.reference.synthetic_images()",
        "similarity": [[round(v, 6) for v in row] for row in reference_similarity(backbone)],
    }
    Path(path).write_text(json.dumps(ref, indent=1) + "\n")
    return ref

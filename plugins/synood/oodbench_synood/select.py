"""Which ID train images SynOOD in-paints: per class, the N with most file bytes per pixel.

The paper keeps the 50 most complex (JPEG bytes / (width x height)) ImageNet train images per
class; richer images carry more context for the describer and the in-painter.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from oodbench.data.sources import ImageList


def bytes_per_pixel(path: str) -> float:
    with Image.open(path) as img:
        width, height = img.size
    return os.path.getsize(path) / float(width * height)


def select_images(images: ImageList, per_class: int, how: str,
                  rng: np.random.Generator) -> list[int]:
    """Indices into ``images``: ``complexity`` (the paper), ``random`` (seeded) or ``first``."""
    chosen: list[int] = []
    for label in np.unique(images.labels):
        members = np.nonzero(images.labels == label)[0]
        if how == "complexity":
            scores = np.array([bytes_per_pixel(images.keys[i]) for i in members])
            order = members[np.argsort(-scores, kind="stable")]
        elif how == "random":
            order = rng.permutation(members)
        else:
            order = members
        chosen += sorted(order[:per_class].tolist())
    return chosen

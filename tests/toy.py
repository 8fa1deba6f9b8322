"""A toy backbone whose embeddings mean something: the mean colour of an image.

Images are solid colours with noise; texts are colour names. Both map to the same 3-d colour
space (padded to 8 dims), so zero-shot classification and OOD scores are predictable and the
tests can check that the pipeline computes the right numbers, not just that it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from oodbench.backbones.base import Backbone

COLOURS = {
    "red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0), "cyan": (0.0, 1.0, 1.0), "magenta": (1.0, 0.0, 1.0),
    "grey": (0.5, 0.5, 0.5), "orange": (1.0, 0.5, 0.0), "purple": (0.5, 0.0, 1.0),
}
DIM = 8
CALLS = {"images": 0, "texts": 0}


def _embed(rgb: torch.Tensor) -> torch.Tensor:
    centred = rgb - 0.5  # so that opposite colours point in opposite directions
    out = torch.zeros(rgb.shape[0], DIM)
    out[:, :3] = centred
    out[:, 3] = 0.05  # a small common component keeps grey images from being a zero vector
    return torch.nn.functional.normalize(out, dim=-1)


class _MeanColour:
    def __call__(self, image: Image.Image) -> torch.Tensor:
        arr = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1)


@dataclasses.dataclass
class ToyColourBackbone(Backbone):
    name = "toy-colour"
    description = "Test backbone: embeddings are mean colours."

    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        self._device = device

    @property
    def embed_dim(self) -> int:
        return DIM

    @property
    def logit_scale(self) -> float:
        return 100.0

    def fingerprint(self) -> str:
        return "toy-colour/1"

    def preprocess(self) -> Callable[[Image.Image], torch.Tensor]:
        return _MeanColour()

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        CALLS["images"] += pixels.shape[0]
        return _embed(pixels.float().mean(dim=(2, 3)))

    def encode_images_differentiable(self, images: torch.Tensor) -> torch.Tensor:
        return _embed(images.float().mean(dim=(2, 3)))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        CALLS["texts"] += len(texts)
        rows = []
        for text in texts:
            hits = [c for c in COLOURS if c in text.lower()]
            rows.append(COLOURS[hits[0]] if hits else (0.5, 0.5, 0.5))
        return _embed(torch.tensor(rows))


def write_colour_images(root, colour: str, n: int, seed: int, size: int = 16) -> list:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    base = np.array(COLOURS[colour]) * 255
    for i in range(n):
        noise = rng.normal(0, 40, size=(size, size, 3))
        arr = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = root / f"{colour}_{i:03d}.png"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths

"""A toy backbone whose embeddings mean something (the mean colour of an image), images of
solid colours and a tiny colour suite: enough to run any component on a CPU in well under a
second.

Images are solid colours with noise; texts are colour names. Both map to the same 3-d colour
space (padded to 8 dims), so zero-shot classification and OOD scores are predictable and tests
can check that the pipeline computes the right numbers, not just that it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import oodbench
from oodbench.backbones.base import Backbone
from oodbench.hookspecs import Register

COLOURS = {
    "red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0), "cyan": (0.0, 1.0, 1.0), "magenta": (1.0, 0.0, 1.0),
    "grey": (0.5, 0.5, 0.5), "orange": (1.0, 0.5, 0.0), "purple": (0.5, 0.0, 1.0),
}
DIM = 8
# how many images / texts every ToyColourBackbone has encoded (tests of caching read it)
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
        for text in texts:  # the first colour of COLOURS named in the text; grey without one
            low = text.lower()
            rows.append(next((rgb for c, rgb in COLOURS.items() if c in low), COLOURS["grey"]))
        return _embed(torch.tensor(rows))


class ToyBackbonePlugin:
    """A plugin registering the toy backbone as ``toy-colour``."""

    @oodbench.hookimpl
    def register_backbones(self, register: Register) -> None:
        register(ToyColourBackbone)


def write_colour_images(root: Path, colour: str, n: int, seed: int, size: int = 16) -> list[Path]:
    """``n`` noisy solid-``colour`` PNGs (``size`` pixels square) under ``root``."""
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


def write_toy_suite(folder: Path, *, id_images: int = 4, train_images: int = 3,
                    near_images: int = 3, far_images: int = 4, broken_file: bool = False,
                    description: str | None = None) -> Path:
    """A colour suite under ``folder``; returns its YAML file (``folder/colours.yaml``).

    ID = red/green/blue (``id_images`` test and ``train_images`` train images per class; no
    train split when 0); near OOD = yellow and magenta (``near_images`` each); far OOD = grey
    (``far_images``, plus one corrupt PNG with ``broken_file``). Its backbone is ``toy-colour``.
    """
    data = folder / "data"
    for colour, seed in (("red", 1), ("green", 2), ("blue", 3)):
        write_colour_images(data / "id" / colour, colour, id_images, seed)
        if train_images:
            write_colour_images(data / "train" / colour, colour, train_images, seed + 10)
    write_colour_images(data / "near", "yellow", near_images, 7)
    write_colour_images(data / "near", "magenta", near_images, 8)
    write_colour_images(data / "far", "grey", far_images, 9)
    if broken_file:
        (data / "far" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    lines = ["name: colours", "version: 1"]
    if description is not None:
        lines.append(f"description: {description}")
    lines += ["task: far", "backbone: toy-colour", "id:", "  name: rgb",
              "  classes: [red, green, blue]",
              f"  test: {{type: imagefolder, root: {data / 'id'}}}"]
    if train_images:
        lines.append(f"  train: {{type: imagefolder, root: {data / 'train'}}}")
    lines += ['prompts: ["a photo of a {}."]', "ood:",
              f"  - {{name: secondary, group: near, source: {{type: imagefolder, "
              f"root: {data / 'near'}}}}}",
              f"  - {{name: grey, group: far, source: {{type: imagefolder, "
              f"root: {data / 'far'}}}}}"]
    suite = folder / "colours.yaml"
    suite.write_text("\n" + "\n".join(lines) + "\n")
    return suite

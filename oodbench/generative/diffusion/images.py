"""Conversions between PIL images, masks and the [0, 1] RGB tensors the diffusion API takes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from oodbench.errors import ParameterError


def seed_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image: the same seed gives the same noise on every device."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def as_rgb(img: Image.Image) -> Image.Image:
    """RGB, with transparency composited on white (as the offline corpus was built)."""
    if img.mode in ("RGBA", "LA", "PA", "P"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return img.convert("RGB")


def images_to_tensor(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """PIL images (any mode) -> [N, 3, size, size] float in [0, 1] (bicubic resize)."""
    out = []
    for img in images:
        img = as_rgb(img)
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BICUBIC)
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1))
    return torch.stack(out) / 255.0


def tensor_to_images(images: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] in [0, 1] -> RGB PIL images."""
    x = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return [Image.fromarray(a) for a in x.permute(0, 2, 3, 1).numpy()]


def masks_to_tensor(masks: Sequence[Image.Image | None] | None, n: int, size: int) -> torch.Tensor:
    """Masks (white = repaint; None = the whole image) -> [N, 1, size, size] in {0, 1}."""
    if masks is None:
        masks = [None] * n
    if len(masks) != n:
        raise ParameterError(f"in-painting got {n} images but {len(masks)} masks.")
    out = []
    for m in masks:
        if m is None:
            out.append(torch.ones(1, size, size))
            continue
        m = m.convert("L").resize((size, size), Image.Resampling.BILINEAR)
        out.append((torch.from_numpy(np.asarray(m, dtype=np.float32).copy()) >= 127.5)[None])
    return torch.stack(out).float()

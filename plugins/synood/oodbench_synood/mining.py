"""Negative-label mining: each synthetic image gets its arg-max label in the negative bank."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def mine_labels(image_features: torch.Tensor, label_features: torch.Tensor,
                chunk: int = 4096, progress: Callable[[int, int], None] | None = None
                ) -> np.ndarray:
    """Index of the most similar label per image (argmax of the softmax = argmax of cos);
    ``progress(done, total)`` is called after each chunk of images."""
    out = []
    total = image_features.shape[0]
    for start in range(0, total, chunk):
        sims = image_features[start : start + chunk].float() @ label_features.float().T
        out.append(sims.argmax(dim=1))
        if progress:
            progress(min(start + chunk, total), total)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)

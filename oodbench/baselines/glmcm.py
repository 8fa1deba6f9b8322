"""GL-MCM (Miyai et al., 2023): MCM of the global feature plus λ times MCM of the patches.

S = max_c softmax_c(cos(g, t_c) / T) + λ · max_{p, c} softmax_c(cos(l_p, t_c) / T),

with g the image embedding, l_p the patch embeddings (:mod:`oodbench.backbones.tokens`), t_c the
ID class embeddings (the suite's prompts, as MCM), T = 1 and λ = 0.5 (the official ImageNet
script; 1.0 is its argparse default). The softmax runs over the ID classes for each patch.

The patch grid is large (196 x 512 floats per ViT-B/16 image), so it is never stored: the
patches are encoded once per image set and reduced at once to the one number the score needs,
the local term max_{p, c} softmax. That number is cached per image (8 bytes) under a key of
everything it depends on: the backbone (weights, preprocessing), the images' content, the run
dtype, the ID text embeddings (a digest of the tensor) and T. λ is applied afterwards, so
changing it re-encodes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from oodbench.baselines.softmax import MCMScorer
from oodbench.cache import content_key, tensor_digest
from oodbench.decode import pil_pixels
from oodbench.errors import OODBenchError
from oodbench.types import FeatureSet, TextHead

if TYPE_CHECKING:
    from oodbench.data.sources import ImageList
    from oodbench.env import MethodEnv

# logits held at once when reducing patches: images x patches x classes (float64)
_REDUCE_ELEMENTS = 1 << 24


def local_mcm(tokens: torch.Tensor, id_features: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """[N, P, D] normalised patch embeddings -> [N]: max over patches and classes of the
    softmax over classes of cos / T (float64)."""
    classes = id_features.shape[0]
    step = max(1, _REDUCE_ELEMENTS // max(1, tokens.shape[1] * classes))
    ids = id_features.to(tokens.device).double().T
    out = [torch.softmax(part.double() @ ids / temperature, dim=-1).amax(dim=(1, 2))
           for part in tokens.split(step)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def gl_mcm(global_mcm: np.ndarray, local: np.ndarray, lambda_local: float) -> np.ndarray:
    """The GL-MCM score from its two terms."""
    return global_mcm + lambda_local * local


class _Pixels(Dataset):
    """Rows ``rows`` of ``images`` through the backbone's preprocessing (or why not)."""

    def __init__(self, images: ImageList, rows: list[int], preprocess: Any) -> None:
        self.images, self.rows, self.preprocess = images, rows, preprocess

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, str, str]:
        pixels, error = pil_pixels(self.images, self.preprocess, self.rows[i])
        return pixels, error, self.images.keys[self.rows[i]]


def _stack(batch: list[tuple[torch.Tensor | None, str, str]]) -> torch.Tensor:
    for pixels, error, key in batch:
        if pixels is None:  # it was read for the global features: changed since then
            raise OODBenchError(f"Image {key} could not be read for its patch features "
                                f"({error}); it was readable when the set was encoded. "
                                f"Restore the file and run again.")
    return torch.stack([pixels for pixels, _, _ in batch])  # type: ignore[misc]


def local_scores(env: MethodEnv, images: ImageList, features: FeatureSet,
                 id_features: torch.Tensor, temperature: float) -> np.ndarray:
    """The local term for each row of ``features`` (images of ``images``), from the cache or
    by encoding the images' patches once."""
    backbone = env.backbone
    key = content_key("gl-mcm-local/1", backbone.fingerprint(), images.fingerprint,
                      str(env.ctx.dtype), tensor_digest(id_features.float()), float(temperature),
                      features.paths)
    cached = env.cache.get_json("local-mcm", key)
    if isinstance(cached, dict) and len(cached.get("scores", ())) == len(features):
        return np.asarray(cached["scores"], dtype=np.float64)
    where = {k: i for i, k in enumerate(images.keys)}
    rows = [where[path] for path in features.paths]
    loader = DataLoader(_Pixels(images, rows, backbone.preprocess()),
                        batch_size=env.ctx.batch_size, num_workers=env.ctx.num_workers,
                        collate_fn=_stack)
    update = env.progress(f"patch features {images.name}", len(rows)) if env.progress else None
    out: list[torch.Tensor] = []
    for pixels in loader:
        with torch.no_grad():
            tokens = _tokens(backbone.encode_image_tokens, pixels, env)
            out.append(local_mcm(tokens, id_features, temperature).cpu())
        if update:
            update(sum(len(o) for o in out), len(rows))
    scores = torch.cat(out).numpy() if out else np.zeros(0)
    env.cache.put_json("local-mcm", key, {"rows": len(scores), "scores": scores.tolist()})
    return scores


def _tokens(encode: Callable[[torch.Tensor], torch.Tensor], pixels: torch.Tensor,
            env: MethodEnv) -> torch.Tensor:
    try:
        return encode(pixels.to(env.device))
    except NotImplementedError as exc:
        raise OODBenchError(f"gl-mcm needs patch features, which backbone "
                            f"{env.backbone_name!r} does not provide ({exc}); use a CLIP ViT "
                            f"(openclip, hf-clip) or the offline mini backbone.") from None


@dataclasses.dataclass
class GLMCMScorer(MCMScorer):
    """GL-MCM: global MCM + λ · local MCM over the patch features of each image."""

    name = "gl-mcm"
    description = ("Global-local MCM: MCM of the image feature + lambda x max patch softmax "
                   "(T=1, lambda=0.5).")
    temperature: float = 1.0
    lambda_local: float = 0.5

    def __post_init__(self) -> None:
        self.check_positive("temperature")
        if not self.lambda_local >= 0:
            raise ValueError(f"lambda_local must be >= 0, got {self.lambda_local!r}")

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        raise OODBenchError("gl-mcm scores whole image sets (score_set): its local term needs "
                            "the images' patch features, which global features do not hold.")

    def score_set(self, env: MethodEnv, images: ImageList, features: FeatureSet,
                  image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        global_mcm = super().score(image_features, head)
        local = local_scores(env, images, features, head.id_features, self.temperature)
        return gl_mcm(global_mcm, local, self.lambda_local)

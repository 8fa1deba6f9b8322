"""Local (patch) features of CLIP ViTs as GL-MCM computes them (Miyai et al., 2023).

GL-MCM's patch embedding of token i keeps only the *value path* of the last transformer block:
with x the block's input, ``v = x + out_proj(v_proj(ln_1(x)))``, then ``v = v + mlp(ln_2(v))``,
then the vision tower's final ``ln_post`` and ``proj`` (the projection to the shared embedding
space). Attention is skipped in that block, so each patch keeps its own content instead of the
image-wide mix that the class token pools. The class token is dropped: the result has one row
per patch (196 for ViT-B/16 at 224 px), L2-normalised.

Both functions run the model's own forward pass once and read the last block's input with a
forward pre-hook, so everything before that block is exactly the model's code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def last_block_input(run: Callable[[], Any], block: nn.Module) -> torch.Tensor:
    """The first input of ``block`` while ``run()`` executes the model's forward pass."""
    seen: list[torch.Tensor] = []

    def grab(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        first = args[0] if args else next(iter(kwargs.values()))
        seen.append(first)

    handle = block.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError("the last transformer block did not run")
    return seen[-1]


def value_path(x: torch.Tensor, norm_1: nn.Module, value: Callable[[torch.Tensor], torch.Tensor],
               norm_2: nn.Module, mlp: nn.Module,
               scale_1: nn.Module | None = None, scale_2: nn.Module | None = None
               ) -> torch.Tensor:
    """``v = x + s1(value(norm_1(x)))``; ``v + s2(mlp(norm_2(v)))`` (s = layer scale or none)."""
    keep_1 = scale_1 if scale_1 is not None else nn.Identity()
    keep_2 = scale_2 if scale_2 is not None else nn.Identity()
    v = x + keep_1(value(norm_1(x)))
    return v + keep_2(mlp(norm_2(v)))


def _mha_value(attn: nn.MultiheadAttention) -> Callable[[torch.Tensor], torch.Tensor]:
    """out_proj(v_proj(h)) of a torch ``MultiheadAttention`` (packed or separate weights)."""
    dim = attn.embed_dim
    if attn.in_proj_weight is not None:
        weight = attn.in_proj_weight[2 * dim:]
    else:
        weight = attn.v_proj_weight
    bias = attn.in_proj_bias[2 * dim:] if attn.in_proj_bias is not None else None
    return lambda h: attn.out_proj(nn.functional.linear(h, weight, bias))


def openclip_patch_tokens(visual: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """[N, P, D] normalised patch embeddings of an open_clip ``VisionTransformer``.

    Raises NotImplementedError for towers this construction does not fit (timm towers,
    attentional pooling, custom attention blocks, ResNets).
    """
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    last = blocks[-1] if blocks is not None and len(blocks) else None
    if (last is None or not isinstance(getattr(last, "attn", None), nn.MultiheadAttention)
            or getattr(visual, "attn_pool", None) is not None
            or getattr(visual, "proj", None) is None):
        raise NotImplementedError(f"GL-MCM patch features need a CLIP ViT with a projection; "
                                  f"open_clip tower {type(visual).__name__} is not one")
    x = last_block_input(lambda: visual(pixels), last)
    if not getattr(visual.transformer, "batch_first", True):
        x = x.transpose(0, 1)  # LND -> NLD
    v = value_path(x, last.ln_1, _mha_value(last.attn), last.ln_2, last.mlp,
                   getattr(last, "ls_1", None), getattr(last, "ls_2", None))
    tokens = visual.ln_post(v[:, 1:]) @ visual.proj  # drop the class token
    return nn.functional.normalize(tokens.float(), dim=-1)


def hf_clip_patch_tokens(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """[N, P, D] normalised patch embeddings of a transformers ``CLIPModel``."""
    vision = getattr(model, "vision_model", None)
    layers = getattr(getattr(vision, "encoder", None), "layers", None)
    projection = getattr(model, "visual_projection", None)
    if vision is None or not layers or projection is None \
            or not hasattr(layers[-1].self_attn, "v_proj"):
        raise NotImplementedError(f"GL-MCM patch features need a CLIP ViT with a projection; "
                                  f"{type(model).__name__} is not one")
    last = layers[-1]
    x = last_block_input(lambda: vision(pixel_values=pixels), last)
    attn = last.self_attn
    v = value_path(x, last.layer_norm1, lambda h: attn.out_proj(attn.v_proj(h)),
                   last.layer_norm2, last.mlp)
    tokens = projection(vision.post_layernorm(v[:, 1:]))  # drop the class token
    return nn.functional.normalize(tokens.float(), dim=-1)

"""GL-MCM's patch features (oodbench.backbones.tokens) against a step-by-step computation on tiny
random models: open_clip (from a config, no weights), transformers CLIP and the mini backbone."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.functional import normalize

from oodbench.backbones.tokens import hf_clip_patch_tokens

# two blocks, so that the last block's input is another block's output; 32 px / 16 px = 2x2
TWO_BLOCKS = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                 "layers": 1},
}


@pytest.fixture(scope="module")
def two_block_openclip(tmp_path_factory):
    import open_clip

    from oodbench.backbones.openclip import OpenCLIPBackbone

    folder = tmp_path_factory.mktemp("configs")
    (folder / "oodbench-tiny-2blocks.json").write_text(json.dumps(TWO_BLOCKS))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(model="oodbench-tiny-2blocks", pretrained="")
    backbone.load(torch.device("cpu"))
    return backbone


def _openclip_by_hand(visual, pixels):
    """(patch tokens, global embedding), every step written out (batch-first blocks)."""
    x = visual.conv1(pixels).flatten(2).transpose(1, 2)  # [N, 4, width]
    cls = visual.class_embedding.view(1, 1, -1).expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
    blocks = visual.transformer.resblocks
    for block in blocks[:-1]:
        x = block(x)
    last, width = blocks[-1], x.shape[-1]
    value = last.ln_1(x) @ last.attn.in_proj_weight[2 * width:].T \
        + last.attn.in_proj_bias[2 * width:]
    v = x + last.attn.out_proj(value)
    v = v + last.mlp(last.ln_2(v))
    tokens = visual.ln_post(v)[:, 1:] @ visual.proj
    pooled = visual.ln_post(last(x)[:, 0]) @ visual.proj
    return normalize(tokens, dim=-1), normalize(pooled, dim=-1)


def test_openclip_patch_tokens_match_the_value_path_by_hand(two_block_openclip):
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tokens = two_block_openclip.encode_image_tokens(pixels)
    with torch.no_grad():
        want, pooled = _openclip_by_hand(two_block_openclip._model.visual, pixels)
    assert tokens.shape == (3, 4, 16)  # a 2x2 grid of 16-d embeddings
    # the hand computation's shared prefix is the model's: its pooled path gives encode_images
    assert torch.allclose(pooled, two_block_openclip.encode_images(pixels), atol=1e-5)
    assert torch.allclose(tokens, want, atol=1e-5)
    assert torch.allclose(tokens.norm(dim=-1), torch.ones(3, 4))
    # the value path is not the block's output: attention is skipped in the last block
    with torch.no_grad():
        visual = two_block_openclip._model.visual
        visual.output_tokens = True
        _, full = visual(pixels)
        visual.output_tokens = False
    assert not torch.allclose(normalize(full @ visual.proj, dim=-1), tokens, atol=1e-3)


def _hf_by_hand(model, pixels):
    """(patch tokens, global embedding) of a transformers CLIPModel, every step written out."""
    vision = model.vision_model
    x = vision.pre_layrnorm(vision.embeddings(pixels))
    layers = vision.encoder.layers
    for layer in layers[:-1]:
        x = _tensor(layer(x, None))
    last = layers[-1]
    attn = last.self_attn
    v = x + attn.out_proj(attn.v_proj(last.layer_norm1(x)))
    v = v + last.mlp(last.layer_norm2(v))
    tokens = model.visual_projection(vision.post_layernorm(v)[:, 1:])
    pooled = model.visual_projection(vision.post_layernorm(_tensor(last(x, None))[:, 0]))
    return normalize(tokens, dim=-1), normalize(pooled, dim=-1)


def _tensor(out):
    return out[0] if isinstance(out, tuple) else out


def test_hf_patch_tokens_match_the_value_path_by_hand(tiny_hf_clip):
    from transformers import CLIPConfig, CLIPModel

    from oodbench.backbones.hf import HFCLIPBackbone

    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    # through the backbone: the one-block fixture
    backbone = HFCLIPBackbone(weights=str(tiny_hf_clip))
    backbone.load(torch.device("cpu"))
    with torch.no_grad():
        want, pooled = _hf_by_hand(backbone._model, pixels)
    assert torch.allclose(pooled, backbone.encode_images(pixels), atol=1e-5)
    tokens = backbone.encode_image_tokens(pixels)
    assert tokens.shape == (2, 4, 16) and torch.allclose(tokens, want, atol=1e-5)
    # two blocks: the last block's input is the first block's output
    config = CLIPConfig(
        text_config={"vocab_size": 99, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
        projection_dim=16)
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        want, _ = _hf_by_hand(model, pixels)
        assert torch.allclose(hf_clip_patch_tokens(model, pixels), want, atol=1e-5)


def test_mini_patch_tokens_average_to_the_global_embedding():
    """The mini CNN's patches are its projection applied at each cell of the 4x4 map; the
    projection is affine, so their unnormalised mean is the unnormalised global embedding."""
    model = pytest.importorskip("oodbench_mini.model")
    backbone = model.MiniBackbone()
    backbone.load(torch.device("cpu"))
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    tokens = backbone.encode_image_tokens(pixels)
    assert tokens.shape == (2, 16, backbone.embed_dim)
    assert torch.allclose(tokens.norm(dim=-1), torch.ones(2, 16), atol=1e-5)
    with torch.no_grad():
        raw = backbone._tower.tokens(pixels)
        assert torch.allclose(raw.mean(dim=1), backbone._tower(pixels), atol=1e-4)
    assert torch.allclose(tokens, normalize(raw, dim=-1), atol=1e-6)


def test_a_backbone_without_patch_features_says_so():
    from tests.toy import ToyColourBackbone

    with pytest.raises(NotImplementedError, match="no patch"):
        ToyColourBackbone().encode_image_tokens(torch.zeros(1, 3, 8, 8))

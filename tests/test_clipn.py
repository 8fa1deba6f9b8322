"""CLIPN: the yes probability q_c, ATD and CTW by hand; the clipn-b16 backbone on a tiny random
CLIPN-shaped checkpoint against a step-by-step computation; the one-line errors."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from oodbench.backbones.clipn import CLIPNBackbone, is_no_key
from oodbench.baselines.clipn import (
    CLIPNScorer,
    clipn_scores,
    has_no_tower,
    require_no_tower,
    yes_probabilities,
)
from oodbench.errors import MissingDataError, OODBenchError, ParameterError
from oodbench.testing.toy import ToyColourBackbone
from oodbench.types import TextHead

TINY_CLIPN = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                 "layers": 1},
}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# -- the score by hand: 2 classes, 2-d embeddings ------------------------------------------
# image z = (1, 0); yes: t_0 = (1, 0), t_1 = (0, 1); no: t_0^no = (0.6, 0.8), t_1^no = (0, 1)
Z = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
YES = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
NO = torch.tensor([[0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)


def test_yes_probability_and_atd_ctw_by_hand():
    s = 2.0
    # cosines: yes (1, 0), no (0.6, 0): q_0 = σ(2·1 - 2·0.6) = σ(0.8), q_1 = σ(0 - 0) = 0.5
    q = yes_probabilities(Z, YES, NO, s)
    assert q[0, 0].item() == pytest.approx(_sigmoid(0.8), abs=1e-12)
    assert q[0, 1].item() == pytest.approx(0.5, abs=1e-12)
    # softmax over yes logits (2, 0): p_0 = e²/(e²+1)
    p0 = math.exp(2) / (math.exp(2) + 1)
    atd = clipn_scores(Z, YES, NO, s, "atd")
    assert atd[0] == pytest.approx(p0 * _sigmoid(0.8) + (1 - p0) * 0.5, abs=1e-12)
    ctw = clipn_scores(Z, YES, NO, s, "ctw")  # predicted class 0
    assert ctw[0] == pytest.approx(_sigmoid(0.8), abs=1e-12)
    # an image on class 1: predicted class 1, whose "no" embedding equals its "yes" one
    assert clipn_scores(torch.tensor([[0.0, 1.0]]), YES, NO, s, "ctw")[0] == pytest.approx(0.5)


def test_scores_renormalise_text_rows_and_scale_matters():
    a = clipn_scores(Z, YES * 3.0, NO * 0.5, 2.0, "atd")
    assert a[0] == pytest.approx(clipn_scores(Z, YES, NO, 2.0, "atd")[0], abs=1e-12)
    assert clipn_scores(Z, YES, NO, 100.0, "atd")[0] != pytest.approx(a[0], abs=1e-3)


def test_scorer_uses_the_heads_no_embeddings_and_needs_them():
    head = TextHead(YES, ["a", "b"], meta={"id_no_features": NO})
    scorer = CLIPNScorer.from_params({"variant": "ctw", "scale": "2"})
    assert scorer.score(Z, head)[0] == pytest.approx(_sigmoid(0.8))
    assert CLIPNScorer().variant == "atd" and CLIPNScorer().scale == 100.0
    with pytest.raises(OODBenchError, match="without 'no' embeddings"):
        CLIPNScorer().score(Z, TextHead(YES, ["a", "b"]))
    with pytest.raises(ParameterError):
        CLIPNScorer.from_params({"variant": "max"})


def test_backbone_without_a_no_tower_is_named_with_the_fix():
    toy = ToyColourBackbone()
    assert not has_no_tower(toy) and has_no_tower(CLIPNBackbone())
    env = SimpleNamespace(backbone=toy, backbone_name="toy-colour")
    with pytest.raises(OODBenchError) as err:
        require_no_tower(env, "scorer 'clipn'")
    message = str(err.value)
    assert "--backbone mini-clipn" in message and "clipn-b16" in message and "\n" not in message
    with pytest.raises(NotImplementedError):
        toy.encode_texts_no(["a red thing"])


# -- clipn-b16 on a tiny random checkpoint ---------------------------------------------------
@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> str:
    import open_clip

    folder = tmp_path_factory.mktemp("clipn-configs")
    (folder / "oodbench-tiny-clipn.json").write_text(json.dumps(TINY_CLIPN))
    open_clip.add_model_config(folder)
    return "oodbench-tiny-clipn"


def _clipn_state(model_name: str) -> dict[str, torch.Tensor]:
    """A CLIPN-shaped state dict: a random CLIP plus a random "no" tower and prompts."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model(model_name, pretrained=None)
    state = dict(model.state_dict())
    gen = torch.Generator().manual_seed(1)
    for key in list(state):
        head = key.split(".", 1)[0]
        if head in ("transformer", "token_embedding", "positional_embedding", "ln_final",
                    "text_projection"):
            value = state[key]
            state[key.replace(head, f"{head}_no", 1)] = value + 0.05 * torch.randn(
                value.shape, generator=gen)
    state["prompt_no"] = 0.1 * torch.randn(16, 77, 32, generator=gen)
    return state


def _text_by_hand(state: dict[str, torch.Tensor], tokens: torch.Tensor, suffix: str,
                  prompt: torch.Tensor | None) -> torch.Tensor:
    """One causal pre-LN block, ln_final, end-of-text pooling and projection, written out."""
    def w(name: str) -> torch.Tensor:
        head, _, rest = name.partition(".")
        return state[f"{head}{suffix}.{rest}" if rest else f"{head}{suffix}"]

    x = w("token_embedding.weight")[tokens] + w("positional_embedding")
    if prompt is not None:
        x = x + prompt.mean(0)
    width, heads = x.shape[-1], 2
    h = F.layer_norm(x, (width,), w("transformer.resblocks.0.ln_1.weight"),
                     w("transformer.resblocks.0.ln_1.bias"))
    qkv = h @ w("transformer.resblocks.0.attn.in_proj_weight").T \
        + w("transformer.resblocks.0.attn.in_proj_bias")
    q, k, v = (t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)
               for t in qkv.split(width, dim=-1))
    n = x.shape[1]
    causal = torch.full((n, n), float("-inf")).triu(1)
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(width // heads) + causal, dim=-1)
    ctx = (attn @ v).transpose(1, 2).reshape(x.shape)
    x = x + ctx @ w("transformer.resblocks.0.attn.out_proj.weight").T \
        + w("transformer.resblocks.0.attn.out_proj.bias")
    h = F.layer_norm(x, (width,), w("transformer.resblocks.0.ln_2.weight"),
                     w("transformer.resblocks.0.ln_2.bias"))
    h = F.gelu(h @ w("transformer.resblocks.0.mlp.c_fc.weight").T
               + w("transformer.resblocks.0.mlp.c_fc.bias"))
    x = x + h @ w("transformer.resblocks.0.mlp.c_proj.weight").T \
        + w("transformer.resblocks.0.mlp.c_proj.bias")
    x = F.layer_norm(x, (width,), w("ln_final.weight"), w("ln_final.bias"))
    pooled = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    return F.normalize(pooled @ w("text_projection"), dim=-1)


@pytest.fixture(scope="module")
def tiny_clipn(tiny_config, tmp_path_factory):
    state = _clipn_state(tiny_config)
    path = tmp_path_factory.mktemp("clipn") / "epoch_10.pt"
    # a training checkpoint as CLIPN's train.py saves it under DDP: "module." prefixes
    torch.save({"epoch": 10, "name": "tiny", "state_dict": {f"module.{k}": v
                                                            for k, v in state.items()}}, path)
    backbone = CLIPNBackbone(model=tiny_config, weights=str(path))
    backbone.load(torch.device("cpu"))
    return backbone, state, path


def test_checkpoint_yes_and_no_towers_match_a_computation_by_hand(tiny_clipn):
    backbone, state, _ = tiny_clipn
    texts = ["a photo of a cat.", "a photo of a dog."]
    tokens = backbone._tokenizer(texts)
    yes, no = backbone.encode_texts(texts), backbone.encode_texts_no(texts)
    with torch.no_grad():
        want_yes = _text_by_hand(state, tokens, "", None)
        want_no = _text_by_hand(state, tokens, "_no", state["prompt_no"])
    assert torch.allclose(yes, want_yes, atol=1e-5)
    assert torch.allclose(no, want_no, atol=1e-5)
    assert not torch.allclose(no, yes, atol=1e-2)
    # the yes/no logits and q of an image, by hand
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    z = backbone.encode_images(pixels)
    q = yes_probabilities(z, yes, no, 100.0)
    by_hand = 1 / (1 + torch.exp(-(100 * z.double() @ want_yes.double().T
                                   - 100 * z.double() @ want_no.double().T)))
    assert torch.allclose(q, by_hand, atol=1e-6)


def test_checkpoint_identity_and_records(tiny_clipn):
    backbone, _, path = tiny_clipn
    assert backbone.weights_identity()["path"] == str(path.resolve())
    assert "sha256=" in backbone.fingerprint()
    assert set(backbone.params()) >= {"model", "weights", "pretrained"}


def test_no_checkpoint_one_line_naming_where_to_get_it(tiny_config, tmp_path):
    with pytest.raises(MissingDataError) as err:
        CLIPNBackbone(model=tiny_config).load(torch.device("cpu"))
    assert "drive.google.com" in str(err.value) and "--weights" in str(err.value)
    with pytest.raises(MissingDataError, match="does not exist"):
        CLIPNBackbone(model=tiny_config, weights=str(tmp_path / "x.pt")).load(torch.device("cpu"))


def test_plain_clip_and_misshapen_no_tower_are_refused(tiny_config, tmp_path):
    state = _clipn_state(tiny_config)
    plain = tmp_path / "plain.pt"
    torch.save({k: v for k, v in state.items() if not is_no_key(k)}, plain)
    with pytest.raises(ParameterError, match="no CLIPN 'no' tower"):
        CLIPNBackbone(model=tiny_config, weights=str(plain)).load(torch.device("cpu"))
    state["ln_final_no.weight"] = torch.ones(7)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(ParameterError, match=r"ln_final.weight has shape \[7\]"):
        CLIPNBackbone(model=tiny_config, weights=str(bad)).load(torch.device("cpu"))


def test_registered_as_clipn_b16():
    from oodbench.plugins import Registry

    reg = Registry().load(entry_points=False)
    entry = reg.get("backbone", "clipn-b16")
    assert entry.obj is CLIPNBackbone
    assert reg.create("backbone", "clipn-b16", {}).model == "ViT-B-16"
    assert "clipn" in reg.names("scorer") and "clipn" in reg.names("method")


def test_is_no_key():
    assert is_no_key("transformer_no.resblocks.0.ln_1.weight") and is_no_key("prompt_no")
    assert is_no_key("text_projection_no") and not is_no_key("transformer.resblocks.0.ln_1.bias")
    assert not np.any([is_no_key(k) for k in ("visual.proj", "logit_scale", "ln_final.weight")])

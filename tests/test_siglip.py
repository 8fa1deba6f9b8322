"""SigLIP through the Hugging Face backbone, end to end, on a tiny random local model.

The model folder is what a user with a local copy passes as ``--weights``: a SiglipModel, a
SiglipImageProcessor and a word-level fast tokenizer (no sentencepiece, nothing downloaded).
Like SigLIP 2's Gemma tokenizer, this tokenizer has no ``model_max_length``, so the backbone
must take SigLIP's padding length (64) from the text model, not from the tokenizer.
"""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from oodbench.backbones.hf import HFCLIPBackbone
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext

WORDS = ["a", "photo", "of", "the", "red", "green", "blue", "yellow", "magenta", "grey",
         "cat", "dog", "."]
TEXT_LENGTH = 64  # SigLIP's trained text length (max_position_embeddings)
LOGIT_SCALE, LOGIT_BIAS = 10.0, -10.0  # SigLIP's initial temperature and bias


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import (
        PreTrainedTokenizerFast,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny-siglip")
    vocab = {tok: i for i, tok in enumerate(["</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # SigLIP's "sticky" EOS: every text ends in </s>, which is also the pad token
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", 0)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>",
                                        pad_token="</s>", unk_token="<unk>")
    config = SiglipConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": TEXT_LENGTH, "pad_token_id": 0,
                     "eos_token_id": 0, "bos_token_id": None},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
    )
    torch.manual_seed(0)
    model = SiglipModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(LOGIT_SCALE))
        model.logit_bias.fill_(LOGIT_BIAS)
    model.save_pretrained(folder)
    SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                    tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def siglip_backbone(tiny_siglip):
    backbone = HFCLIPBackbone(model_id="nobody/not-on-any-hub", weights=str(tiny_siglip))
    backbone.load(torch.device("cpu"))
    return backbone


def _unit_rows(x: torch.Tensor, n: int, d: int) -> bool:
    return x.shape == (n, d) and bool(torch.allclose(x.norm(dim=1), torch.ones(n), atol=1e-5))


def test_siglip_loads_from_a_local_folder(siglip_backbone, tiny_siglip):
    assert siglip_backbone._siglip and siglip_backbone.embed_dim == 32
    assert siglip_backbone._processor.tokenizer.model_max_length > 10**9  # no length of its own
    assert f"hf:{tiny_siglip}@" in siglip_backbone.fingerprint()
    assert "model.safetensors" in siglip_backbone.fingerprint()
    spec = siglip_backbone.tensor_preprocess()  # SiglipImageProcessor: squash resize, no crop
    assert spec is not None and spec.output_size == (32, 32) and spec.resize_mode == "squash"


def test_siglip_encodes_images_and_texts_to_unit_rows(siglip_backbone):
    preprocess = siglip_backbone.preprocess()
    pixels = torch.stack([preprocess(Image.new("RGB", (50, 40), c))
                          for c in ("red", "blue", "grey")])
    assert pixels.shape == (3, 3, 32, 32)
    images = siglip_backbone.encode_images(pixels)
    texts = siglip_backbone.encode_texts(["a photo of a red cat.", "a dog", "grey"])
    assert _unit_rows(images, 3, 32) and _unit_rows(texts, 3, 32)
    assert torch.isfinite(images).all() and torch.isfinite(texts).all()
    assert not torch.allclose(texts[0], texts[1])


def test_siglip_pads_every_text_to_its_trained_length(siglip_backbone, monkeypatch):
    """SigLIP pools the last position, so a text's embedding must not depend on its batch."""
    model = siglip_backbone._model
    seen: list[tuple[int, ...]] = []
    original = model.get_text_features

    def spy(**tokens):
        seen.append(tuple(tokens["input_ids"].shape))
        return original(**tokens)

    monkeypatch.setattr(model, "get_text_features", spy)
    alone = siglip_backbone.encode_texts(["a red cat"])
    batched = siglip_backbone.encode_texts(["a red cat", "a photo of the blue dog ."])
    assert seen == [(1, TEXT_LENGTH), (2, TEXT_LENGTH)]
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=0)
    # longer than the position table: truncated, not an index error
    long = siglip_backbone.encode_texts(["a photo of the red cat " * 30])
    assert seen[-1] == (1, TEXT_LENGTH) and _unit_rows(long, 1, 32)


def test_siglip_logit_scale_and_bias(siglip_backbone):
    """What oodbench takes from SigLIP's sigmoid head.

    ``logit_scale`` is exp of the learned log-temperature, as for CLIP (here 10, SigLIP's
    init). The learned ``logit_bias`` is deliberately unused: backbones expose normalised
    embeddings and one scale, and scorers (MCM etc.) use softmaxes over classes or rankings, which
    a bias added to every logit does not change. This test pins both facts.
    """
    assert siglip_backbone.logit_scale == pytest.approx(LOGIT_SCALE, rel=1e-5)
    assert siglip_backbone._model.logit_bias.item() == pytest.approx(LOGIT_BIAS)
    assert not hasattr(siglip_backbone, "logit_bias")
    image = siglip_backbone.encode_images(
        siglip_backbone.preprocess()(Image.new("RGB", (32, 32), "red"))[None])
    texts = siglip_backbone.encode_texts(["red", "green", "blue"])
    logits = siglip_backbone.logit_scale * image @ texts.T
    torch.testing.assert_close(logits.softmax(-1), (logits + LOGIT_BIAS).softmax(-1))


def test_siglip_runs_mcm_end_to_end(registry, colour_suite, tiny_siglip, tmp_path):
    request = RunRequest("mcm", str(colour_suite), backbone="hf-siglip-b16",
                         backbone_params={"weights": str(tiny_siglip)})
    record = run(request, RunContext(cache_dir=tmp_path / "cache", batch_size=16), registry)
    assert record["backbone"]["name"] == "hf-siglip-b16"
    assert str(tiny_siglip) in record["backbone"]["fingerprint"]
    for name in ("grey", "secondary"):
        assert math.isfinite(record["metrics"][name]["auroc"])
        assert 0.0 <= record["metrics"][name]["auroc"] <= 1.0
    assert record["counts"]["skipped"] == {"grey": 1}

from __future__ import annotations

import pytest
import torch
from PIL import Image

from oodbench.backbones.base import encode_texts_halving
from oodbench.backbones.hf import HFCLIPBackbone
from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.errors import MissingDataError, OfflineError, OODBenchError, ResourceError


def test_hf_clip_from_local_folder(tiny_hf_clip):
    backbone = HFCLIPBackbone(model_id=str(tiny_hf_clip))
    backbone.load(torch.device("cpu"))
    assert backbone.embed_dim == 16
    pixels = torch.stack([backbone.preprocess()(Image.new("RGB", (50, 40), c))
                          for c in ("red", "blue")])
    images = backbone.encode_images(pixels)
    texts = backbone.encode_texts(["a photo of a cat.", "a dog"])
    assert images.shape == (2, 16) and texts.shape == (2, 16)
    assert torch.allclose(images.norm(dim=1), torch.ones(2), atol=1e-5)
    assert str(tiny_hf_clip) in backbone.fingerprint()


def test_hf_missing_local_folder_is_clear(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist"):
        HFCLIPBackbone(model_id=str(tmp_path / "nope")).load(torch.device("cpu"))


@pytest.fixture
def hub_offline(monkeypatch):
    """HF_HUB_OFFLINE as a user sets it (the hub library reads it once, at import)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_hf_offline_hub_is_one_line(hub_offline):
    with pytest.raises(OfflineError, match="Cannot load Hugging Face model") as info:
        HFCLIPBackbone(model_id="openai/clip-vit-base-patch16").load(torch.device("cpu"))
    assert "\n" not in str(info.value) and "model_id=/local/folder" in str(info.value)


def test_openclip_offline_pretrained_is_one_line(hub_offline, tiny_clip_config):
    with pytest.raises(OfflineError, match="--weights PATH") as info:
        OpenCLIPBackbone(model="ViT-B-32-quickgelu", pretrained="openai").load(
            torch.device("cpu"))
    assert "\n" not in str(info.value)


def test_openclip_unknown_model(tiny_clip_config):
    with pytest.raises(OODBenchError, match="no model 'not-a-model'"):
        OpenCLIPBackbone(model="not-a-model", pretrained="").load(torch.device("cpu"))


def test_openclip_missing_weights_file(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist"):
        OpenCLIPBackbone(weights=str(tmp_path / "x.pt")).load(torch.device("cpu"))


# -- weights: a local copy instead of the hub id -----------------------------------------------
def test_hf_weights_alias_loads_the_local_folder(tiny_hf_clip):
    backbone = HFCLIPBackbone(model_id="nobody/not-on-any-hub", weights=str(tiny_hf_clip))
    backbone.load(torch.device("cpu"))
    assert backbone.source == str(tiny_hf_clip) and backbone.embed_dim == 16
    assert f"hf:{tiny_hf_clip}@" in backbone.fingerprint()
    plain = HFCLIPBackbone(model_id=str(tiny_hf_clip))
    plain.load(torch.device("cpu"))
    texts = ["a photo of a cat.", "a dog"]
    assert torch.equal(backbone.encode_texts(texts), plain.encode_texts(texts))
    assert backbone.fingerprint() == plain.fingerprint()


def test_hf_missing_weights_folder_is_clear(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist; pass --weights") as info:
        HFCLIPBackbone(weights=str(tmp_path / "nope")).load(torch.device("cpu"))
    assert "\n" not in str(info.value)


def test_hf_unreachable_hub_is_one_line_naming_id_and_local_path(monkeypatch):
    """No HF_HUB_OFFLINE set: the quick probe finds no hub and the load fails at once."""
    import huggingface_hub.constants

    from oodbench import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "")  # undecided; restored after the test
    import datasets.config

    for module in (huggingface_hub.constants, datasets.config):  # the probe patches both
        monkeypatch.setattr(module, "HF_HUB_OFFLINE", module.HF_HUB_OFFLINE)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    with pytest.raises(OfflineError) as info:
        HFCLIPBackbone(weights="someone/clip-that-is-not-cached").load(torch.device("cpu"))
    text = str(info.value)
    assert "\n" not in text and "'someone/clip-that-is-not-cached'" in text
    assert "--weights /local/folder" in text and "HF_HUB_OFFLINE=1" in text


# -- out of memory ---------------------------------------------------------------------------
def test_text_out_of_memory_halves_the_batch():
    calls: list[int] = []

    def encode(texts: list[str]) -> torch.Tensor:
        calls.append(len(texts))
        if len(texts) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return torch.tensor([[float(t)] for t in texts])

    out = encode_texts_halving(encode, [str(i) for i in range(10)])
    assert out.flatten().tolist() == list(range(10))  # every text once, in order
    assert calls[:3] == [10, 5, 2] and set(calls[2:]) == {2}


def test_text_out_of_memory_at_batch_one_is_one_line():
    def encode(texts: list[str]) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(ResourceError) as info:
        encode_texts_halving(encode, ["a", "b", "c", "d"])
    text = str(info.value)
    assert "\n" not in text and "batch size 1 (halved from 4)" in text and "--device cpu" in text


def test_openclip_text_encoding_uses_the_fallback(tiny_clip_config, monkeypatch):
    backbone = OpenCLIPBackbone(model=tiny_clip_config, pretrained="")
    backbone.load(torch.device("cpu"))
    whole = backbone.encode_texts(["a red", "a green", "a blue"])
    real = backbone._loaded.encode_text

    def flaky(tokens):
        if tokens.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(tokens)

    monkeypatch.setattr(backbone._loaded, "encode_text", flaky)
    assert torch.allclose(backbone.encode_texts(["a red", "a green", "a blue"]), whole, atol=1e-5)


def test_image_out_of_memory_at_batch_one_is_one_line():
    from oodbench.encoding import encode_with_fallback as _encode_with_fallback
    from oodbench.types import RunContext
    from tests.toy import ToyColourBackbone

    class NoMemory(ToyColourBackbone):
        def encode_images(self, pixels):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    backbone = NoMemory()
    backbone.load(torch.device("cpu"))
    with pytest.raises(ResourceError) as info:
        _encode_with_fallback(backbone, torch.rand(4, 3, 8, 8), RunContext(), 4)
    text = str(info.value)
    assert isinstance(info.value, OODBenchError) and "\n" not in text
    assert "single image" in text and "--device cpu" in text

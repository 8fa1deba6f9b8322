from __future__ import annotations

import json
from pathlib import Path

import pytest

import oodbench
from oodbench.plugins import Registry, reset_registry
from oodbench.testing.toy import ToyColourBackbone, write_toy_suite

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                 "layers": 1},
}


class _TestPlugin:
    @oodbench.hookimpl
    def register_backbones(self, register):
        register(ToyColourBackbone)
        from oodbench.backbones.openclip import OpenCLIPBackbone

        register(OpenCLIPBackbone, name="tiny-clip",
                 defaults={"model": "oodbench-tiny", "pretrained": ""},
                 description="random tiny open_clip model for tests")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test sees another's registry, cache or results; downloaded data stays shared."""
    from oodbench.paths import data_dir

    monkeypatch.setenv("OODBENCH_DATA", str(data_dir()))
    monkeypatch.setenv("OODBENCH_HOME", str(tmp_path / "home"))
    # of the entry-point plugins only the offline mini world (the offline suites' backbone)
    monkeypatch.setenv("OODBENCH_LOAD_PLUGINS", "mini")
    reset_registry()
    yield
    reset_registry()


@pytest.fixture(scope="session")
def tiny_clip_config(tmp_path_factory):
    import open_clip

    folder = tmp_path_factory.mktemp("openclip-configs")
    (folder / "oodbench-tiny.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder)
    return "oodbench-tiny"


@pytest.fixture
def registry(tiny_clip_config) -> Registry:
    reg = Registry().load(entry_points=False)
    reg.add_plugin(_TestPlugin(), "tests")
    return reg


@pytest.fixture
def colour_suite(tmp_path) -> Path:
    """ID = red/green/blue images; near OOD = yellow/magenta; far OOD = grey; one corrupt file."""
    return write_toy_suite(tmp_path, id_images=20, train_images=5, near_images=15,
                           far_images=25, broken_file=True, description="toy colour suite")


@pytest.fixture(scope="session")
def tiny_hf_clip(tmp_path_factory):
    """A random tiny transformers CLIP saved to disk with a character-level tokenizer (its image
    processor resizes bicubic, transformers' default for CLIP)."""
    import string

    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-hf-clip")
    chars = list(string.ascii_lowercase + string.digits + ".,' ")
    vocab = {tok: i for i, tok in enumerate(
        ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "eos_token_id": 1, "bos_token_id": 0,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32},
                                         crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder

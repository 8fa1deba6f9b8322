from __future__ import annotations

import pytest
import torch
from PIL import Image

from oodbench.generative.vision import TransformersDescriber, VocabularyDescriber


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    """A random tiny LLaVA (CLIP vision tower + Llama) with a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    folder = tmp_path_factory.mktemp("tiny-llava")
    words = ["[PAD]", "[UNK]", "<eos>", "<image>", "USER", "ASSISTANT", ":", "-", "cat", "dog",
             "list", "things", "the", "other", "than"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   eos_token="<eos>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    template = ("{% for m in messages %}{{ m['role'] | upper }} : {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}"
                "{% endfor %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT :{% endif %}")
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                           crop_size={"height": 32, "width": 32}),
        tokenizer=fast, patch_size=16, vision_feature_select_strategy="default",
        chat_template=template, image_token="<image>", num_additional_image_tokens=1)
    processor.save_pretrained(folder)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=32, patch_size=16,
                                       projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32,
                                num_hidden_layers=1, num_attention_heads=2,
                                num_key_value_heads=2, max_position_embeddings=128,
                                pad_token_id=0, eos_token_id=2),
        image_token_index=3, vision_feature_layer=-1, vision_feature_select_strategy="default")
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    return folder


def test_tiny_llava_answers_each_image_in_batches(tiny_llava):
    describer = TransformersDescriber(model=str(tiny_llava), max_new_tokens=4, device="cpu",
                                      batch_size=2)
    images = [Image.new("RGB", (40, 30), c) for c in ("red", "blue", "green")]
    answers = describer.describe(images, ["list things", "the cat", "dog"])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert answers == describer.describe(images, ["list things", "the cat", "dog"])  # greedy
    assert len(describer.context(images[:1], ["cat"])) == 1
    assert all(isinstance(x, list) for x in describer.propose(images[:2], ["a", "b"]))


def test_mllm_offline_is_one_line(monkeypatch):
    import huggingface_hub.constants

    from oodbench.errors import OfflineError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineError, match=r"Cannot load MLLM 'llava-hf/llava-1\.5-7b-hf'"):
        TransformersDescriber().describe([Image.new("RGB", (8, 8))], ["x"])


def test_vocabulary_describer_ranks_and_excludes(registry, colour_suite, tmp_path):
    from oodbench.labels import wordnet

    try:
        wordnet.wordnet_dir()
    except Exception as exc:
        pytest.skip(f"WordNet not installed ({exc})")
    from oodbench.cache import ArtifactCache
    from oodbench.data.suite import load_suite
    from oodbench.env import MethodEnv
    from oodbench.features import FeatureStore
    from oodbench.types import RunContext
    from tests.toy import ToyColourBackbone

    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    env = MethodEnv(RunContext(cache_dir=tmp_path), backbone, "toy-colour",
                    load_suite(colour_suite), FeatureStore(ArtifactCache(tmp_path)), registry)
    describer = VocabularyDescriber(top_k=3)
    describer.bind(env)
    red = Image.new("RGB", (16, 16), (255, 0, 0))
    context = describer.context([red], ["cat"])[0].split(", ")
    assert len(context) == 3 and "cat" not in context
    proposed = describer.propose([red], ["ignored"])[0]
    assert len(proposed) == 3 and not {"red", "green", "blue"} & set(proposed)

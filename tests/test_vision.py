from __future__ import annotations

import pytest
import torch
from PIL import Image

from oodbench.errors import MissingDataError
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


@pytest.fixture(scope="module")
def tiny_qwen2_vl(tmp_path_factory):
    """A random tiny Qwen2-VL (its own vision tower, M-RoPE text model) and a local processor."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    try:
        from transformers import (
            PreTrainedTokenizerFast,
            Qwen2VLConfig,
            Qwen2VLForConditionalGeneration,
            Qwen2VLImageProcessor,
            Qwen2VLProcessor,
            Qwen2VLVideoProcessor,
        )
    except ImportError as exc:
        pytest.skip(f"transformers {transformers.__version__} lacks a Qwen2-VL class ({exc})")
    folder = tmp_path_factory.mktemp("tiny-qwen2-vl")
    words = ["[PAD]", "[UNK]", "<|im_end|>", "<|vision_start|>", "<|image_pad|>",
             "<|vision_end|>", "<|video_pad|>", "user", "assistant", ":", "-", "cat", "dog",
             "list", "things", "the"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   eos_token="<|im_end|>")
    fast.add_special_tokens({"additional_special_tokens": words[2:7]})
    # Qwen2-VL's own layout: the processor expands <|image_pad|> to one token per merged patch
    template = ("{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<|vision_start|> <|image_pad|> <|vision_end|> "
                "{% else %}{{ c['text'] }}{% endif %}{% endfor %} <|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}assistant :{% endif %}")
    try:
        # 28..56 pixels a side: a 2x2 to 4x4 grid of 14-pixel patches, 1 to 4 image tokens
        image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56)
        Qwen2VLProcessor(image_processor=image_processor, tokenizer=fast,
                         video_processor=Qwen2VLVideoProcessor(),
                         chat_template=template).save_pretrained(folder)
        config = Qwen2VLConfig(
            vision_config={"depth": 1, "embed_dim": 16, "hidden_size": 16, "num_heads": 2,
                           "mlp_ratio": 2},
            text_config={"vocab_size": len(words), "hidden_size": 16, "intermediate_size": 32,
                         "num_hidden_layers": 1, "num_attention_heads": 2,
                         "num_key_value_heads": 2, "max_position_embeddings": 128,
                         "pad_token_id": 0, "eos_token_id": 2, "bos_token_id": None,
                         # M-RoPE: (temporal, height, width) sections of head_dim / 2 = 4
                         "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                             "mrope_section": [1, 1, 2]}},
            image_token_id=4, video_token_id=6, vision_start_token_id=3, vision_end_token_id=5)
        torch.manual_seed(0)
        Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    except (TypeError, ValueError, KeyError) as exc:  # an older transformers' config/processor API
        pytest.skip(f"transformers {transformers.__version__} cannot build a tiny Qwen2-VL "
                    f"offline: {exc}")
    return folder


def test_tiny_qwen2_vl_answers_each_image_in_batches(tiny_qwen2_vl):
    describer = TransformersDescriber(model=str(tiny_qwen2_vl), max_new_tokens=4, device="cpu",
                                      batch_size=2)
    images = [Image.new("RGB", (40, 30), c) for c in ("red", "blue", "green")]
    answers = describer.describe(images, ["list things", "the cat", "dog"])
    assert type(describer._model).__name__ == "Qwen2VLForConditionalGeneration"
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert answers == describer.describe(images, ["list things", "the cat", "dog"])  # greedy
    # the image really went through Qwen2-VL's preprocessing: one token per 2x2 merged patch
    inputs = describer._processor(images=images[:1], text=["<|image_pad|> cat"],
                                  return_tensors="pt")
    merged = int(inputs["image_grid_thw"].prod()) // 4
    assert merged >= 1 and int((inputs["input_ids"] == 4).sum()) == merged
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


def test_vocabulary_describer_corpus_concepts_and_llm_phrasing(registry, colour_suite,
                                                               tmp_path, monkeypatch):
    """Opt-in: the offline catalogue's concepts as vocabulary; a text LLM phrases the answer."""
    import dataclasses
    import json

    import oodbench
    from oodbench.cache import ArtifactCache
    from oodbench.data.suite import load_suite
    from oodbench.env import MethodEnv
    from oodbench.features import FeatureStore
    from oodbench.generative import TextGenerator
    from oodbench.types import RunContext
    from tests.toy import ToyColourBackbone

    # a hand-made catalogue; the toy text encoder maps a text to the first colour it names
    data = tmp_path / "data"
    (data / "offline").mkdir(parents=True)
    rows = [{"path": f"images/{i}.png", "concept": c, "category": "thing", "split": "train"}
            for i, c in enumerate(["red kite", "orange fish", "blue whale", "stone", "red kite"])]
    (data / "offline" / "catalog.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (data / "offline" / "manifest.json").write_text(json.dumps({"corpus_version": 7}))
    monkeypatch.setenv("OODBENCH_DATA", str(data))

    prompts_seen: list[str] = []

    @dataclasses.dataclass
    class PhrasingLLM(TextGenerator):
        name = "phrasing-llm"

        def generate(self, prompts):
            prompts_seen.extend(chat[-1]["content"] for chat in prompts)
            return ["Sure:\n- Kite\n- Sky (blue)"] * len(prompts)

    class Plugin:
        @oodbench.hookimpl
        def register_text_generators(self, register):
            register(PhrasingLLM)

    registry.add_plugin(Plugin(), "phrasing")
    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    env = MethodEnv(RunContext(cache_dir=tmp_path), backbone, "toy-colour",
                    load_suite(colour_suite), FeatureStore(ArtifactCache(tmp_path)), registry)
    red = Image.new("RGB", (16, 16), (255, 0, 0))

    assert VocabularyDescriber().identity() == "vocabulary:wordnet-concrete:5:a photo of a {}"
    corpus = registry.create("image_describer", "vocabulary",
                             {"vocabulary": "corpus", "top_k": 2})
    corpus.bind(env)
    assert corpus._words() == ["blue whale", "orange fish", "red kite", "stone"]
    assert corpus.context([red], ["cat"]) == ["red kite, orange fish"]
    assert corpus.propose([red], ["x"]) == [["orange fish", "stone"]]  # ID names excluded
    assert corpus.identity() == "vocabulary:corpus-v7:2:a photo of a {}"
    from oodbench.generative import nouns

    monkeypatch.setattr(nouns, "concrete_nouns", lambda: [("kite", 1), ("stone", 2)])
    both = VocabularyDescriber(vocabulary="wordnet+corpus")
    assert both._words() == ["kite", "stone", "blue whale", "orange fish", "red kite"]
    assert both.identity() == "vocabulary:wordnet-concrete+corpus-v7:5:a photo of a {}"

    phrased = registry.create("image_describer", "vocabulary",
                              {"vocabulary": "corpus", "top_k": 2, "phrase_with": "phrasing-llm"})
    phrased.bind(env)
    near_prompt = "Given the image category [red] and this image, list 3 classes."
    assert phrased.propose([red], [near_prompt]) == [["kite", "sky"]]
    assert prompts_seen == [f"This image shows: orange fish, stone.\n{near_prompt}"]
    assert phrased.context([red], ["cat"]) == ["Sure:\n- Kite\n- Sky (blue)"]
    assert prompts_seen[1].startswith("This image shows: red kite, orange fish.\nList the")
    assert phrased.identity().endswith(":phrase=phrasing-llm:{}")
    with pytest.raises(Exception, match="vocabulary must be one of"):
        registry.create("image_describer", "vocabulary", {"vocabulary": "everything"})
    (data / "offline" / "manifest.json").unlink()
    with pytest.raises(MissingDataError, match="fetch-offline --force"):
        both.identity()


def test_a_chat_describer_implements_describe_and_gets_both_requests() -> None:
    """The structured requests default to prompts over ``describe``: a third-party chat model
    implements one method."""
    import dataclasses

    from oodbench.generative import ImageDescriber, context_prompt

    @dataclasses.dataclass
    class Echo(ImageDescriber):
        name = "echo"
        asked: list = dataclasses.field(default_factory=list)

        def describe(self, images, prompts):
            self.asked += list(prompts)
            return ["1. kite\n2. [stone], cloud" for _ in prompts]

    echo, image = Echo(), Image.new("RGB", (8, 8))
    assert echo.context([image], ["cat"]) == ["1. kite\n2. [stone], cloud"]
    assert echo.asked == [context_prompt("cat")]
    assert "other than the cat" in echo.asked[0]
    proposals = echo.propose([image], ["name outliers"])
    assert echo.asked[-1] == "name outliers" and proposals[0][:1] == ["kite"]

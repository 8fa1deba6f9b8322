"""MM-OOD's generative cost with random-initialised real architectures (issue 9: numbers).

    python benchmarks/mmood_timing.py                    # CUDA: the paper's model sizes
    python benchmarks/mmood_timing.py --tiny --device cpu    # smoke test, tiny configs

Times the project's own code paths with models built from their published configs (random
weights, nothing downloaded), after one warm-up call each:
- near branch: ``TransformersDescriber.propose`` (the ``transformers-mllm`` describer) on
  LLaVA-1.5-7B (CLIP ViT-L/14-336 + Llama-2-7B, bf16 on CUDA), EOE's near question "+ and this
  image" on ImageNet-sized images, its batch size, greedy, ``max_new_tokens`` tokens per answer
  (random weights never stop on their own: ``min_new_tokens`` makes every answer that long);
- far branch: ``LLMEnvisioner`` (broad categories + ``--llm-turns`` far turns over the 1,000
  ImageNet class names) on ``TransformersTextGenerator`` with Qwen2.5-72B-Instruct (the local LLM
  the MM-OOD README names; 7B with ``--llm qwen2.5-7b``), then SD-1.5 text-to-image renders
  through ``DiffusersGenerator`` (50 PNDM steps, guidance 7.5, 512², fp16; the pipeline of
  benchmarks/diffusion_throughput.py) and the MLLM's elaborate answer per rendered image.
The total for a label budget L multiplies the measured unit times by MM-OOD's counts (its
defaults: 50 labels per LLM turn, at most 10 turns; R = min(50, L // 10) renders per round,
3 rounds at most, counted in full). Not timed: loading real checkpoints, caching, filtering.

Prompts are tokenised by a stand-in BPE (open_clip's English merges cut to the model's
vocabulary size, so prompt lengths are close to the real tokenisers'); token ids only steer the
random models. The models are built one at a time (72B bf16 needs ~136 GiB; it is skipped with
a message when the device has less free memory).
"""

from __future__ import annotations

import argparse
import gzip
import math
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch
from PIL import Image

from oodbench.generative.text import TransformersTextGenerator
from oodbench.generative.vision import TransformersDescriber
from oodbench_eoe import prompts as P
from oodbench_eoe.envision import LLMEnvisioner

ROOT = Path(__file__).resolve().parent
CLIP_L336 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
             "num_attention_heads": 16, "image_size": 336, "patch_size": 14,
             "projection_dim": 768, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
             "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "pad_token_id": 32001}
QWEN = {
    "qwen2.5-72b": {"hidden_size": 8192, "intermediate_size": 29568, "num_hidden_layers": 80,
                    "num_attention_heads": 64, "num_key_value_heads": 8},
    "qwen2.5-7b": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                   "num_attention_heads": 28, "num_key_value_heads": 4},
}
QWEN_COMMON = {"vocab_size": 152064, "max_position_embeddings": 32768, "rope_theta": 1e6,
               "rms_norm_eps": 1e-6, "tie_word_embeddings": False}
TINY_VISION = {**CLIP_L336, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 2, "projection_dim": 32}
TINY_LLAMA = {**LLAMA2_7B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 4}
TINY_QWEN = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2}
LLAVA_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}{% for c in m['content'] %}"
    "{% if c['type'] == 'text' %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
CHATML = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are Qwen, created by "
    "Alibaba Cloud. You are a helpful assistant.<|im_end|>\n{% endif %}{% for m in messages %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
BROAD = ["animal", "bird", "dog", "device", "vehicle", "food", "structure", "clothing"]


def stand_in_tokenizer(size: int, front: list[str], back: list[str]) -> Any:
    """A byte-level BPE of ``size`` ids (CLIP's merges), ``front`` first, ``back`` after."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")[1:]
    base = list(bytes_to_unicode().values())
    base += [b + "</w>" for b in base]
    merges = [tuple(m.split()) for m in lines[: size - len(front) - len(base)]]
    vocab = {t: i for i, t in enumerate(front + base + ["".join(m) for m in merges] + back)}
    tok = Tokenizer(models.BPE(vocab, merges, end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Lowercase()
    split = Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(split, behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.add_special_tokens({"additional_special_tokens": front + back})
    return fast


def build(cls: Any, config: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Random weights, created on ``device`` in ``dtype``; greedy answers of fixed length."""
    torch.manual_seed(0)
    with torch.device(device):
        model = cls._from_config(config, dtype=dtype)
    return model.eval()


def fixed_length(model: Any, tokens: int) -> None:
    model.generation_config.min_new_tokens = tokens  # random weights may emit EOS any time
    model.generation_config.max_new_tokens = tokens


def fits(cls: Any, config: Any, device: torch.device, dtype: torch.dtype) -> tuple[bool, float]:
    """Whether the weights fit in the device's free memory (with 4 GiB to spare); GiB."""
    with torch.device("meta"):
        count = sum(p.numel() for p in cls(config).parameters())
    gib = count * torch.finfo(dtype).bits / 8 / 2**30
    if device.type != "cuda":
        return True, gib
    return gib + 4 < torch.cuda.mem_get_info(device)[0] / 2**30, gib


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, call: Any) -> float:
    sync(device)
    start = time.perf_counter()
    call()
    sync(device)
    return time.perf_counter() - start


def imagenet_like(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8))
            for _ in range(count)]


def llava(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> Any:
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = stand_in_tokenizer(32000, ["<unk>", "<s>", "</s>"], ["<image>", "<pad>"])
    tokenizer.pad_token, tokenizer.eos_token = "<pad>", "</s>"
    tokenizer.padding_side = "left"  # as the describer's own loader sets it
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 336},
                                           crop_size={"height": 336, "width": 336}),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**(TINY_VISION if args.tiny else CLIP_L336)),
        text_config=LlamaConfig(**(TINY_LLAMA if args.tiny else LLAMA2_7B)),
        image_token_index=32000, pad_token_id=32001, projector_hidden_act="gelu",
        vision_feature_layer=-2, vision_feature_select_strategy="default")
    model = build(LlavaForConditionalGeneration, config, device, dtype)
    fixed_length(model, args.mllm_tokens)
    return TransformersDescriber.from_model(model, processor, str(device),
                                            max_new_tokens=args.mllm_tokens)


def per_image(describer: Any, images: list[Image.Image], prompts: list[str],
              device: torch.device) -> float:
    batch = describer.batch_size
    describer.propose(images[:batch], prompts[:batch])  # warm-up
    return timed(device, lambda: describer.propose(images, prompts)) / len(images)


def render(args: argparse.Namespace, device: torch.device) -> tuple[float, list[Image.Image]]:
    import diffusion_throughput as dt

    with TemporaryDirectory() as tmp:
        pipe = dt.build_pipeline("t2i", args.tiny, Path(tmp))
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.to(device=device, dtype=dtype)
    size, steps = (64, 2) if args.tiny else (512, 50)
    gen = dt.make_generator(pipe, "t2i", size, steps, 4, device)  # the preset's batch size
    prompts = [f"a photo of a label number {i}." for i in range(args.images)]
    gen.text_to_image(prompts[: gen.batch_size], list(range(gen.batch_size)))  # warm-up
    made: list[Image.Image] = []
    seconds = timed(device, lambda: made.extend(gen.text_to_image(prompts,
                                                                  list(range(len(prompts))))))
    return seconds / len(prompts), made


def envision(args: argparse.Namespace, device: torch.device,
             dtype: torch.dtype) -> tuple[float, float] | None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**QWEN_COMMON, **(TINY_QWEN if args.tiny else QWEN[args.llm]))
    ok, gib = fits(Qwen2ForCausalLM, config, device, dtype)
    if not ok:
        print(f"LLM {args.llm}: {gib:.1f} GiB of weights do not fit in the free device memory; "
              f"skipped (try --llm qwen2.5-7b)")
        return None
    model = build(Qwen2ForCausalLM, config, device, dtype)
    fixed_length(model, args.llm_tokens)
    tokenizer = stand_in_tokenizer(49408, [], ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tokenizer.pad_token, tokenizer.chat_template = "<|endoftext|>", CHATML
    llm = TransformersTextGenerator.from_model(model, tokenizer, str(device),
                                               max_new_tokens=args.llm_tokens)
    names = (ROOT.parent / "oodbench" / "classlists" / "imagenet1k_names.txt").read_text()
    names = names.split("\n")
    names = [n for n in names if n]
    prompt = tokenizer(P.far_prompt(names, 50))["input_ids"]
    print(f"LLM {'tiny' if args.tiny else args.llm} ({gib:.1f} GiB), far prompt "
          f"{len(prompt)} tokens, {args.llm_tokens} new tokens per answer")
    envisioner = LLMEnvisioner(llm, per_turn=50, max_turns=args.llm_turns)
    envisioner.broad_categories(None, names[:10], 8)  # warm-up
    broad = timed(device, lambda: envisioner.broad_categories(None, names, 8))
    turns = timed(device, lambda: envisioner.far(None, names, BROAD, 10**6))
    return broad, turns / args.llm_turns


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny configs (CPU smoke test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="MLLM/LLM dtype (bf16 on CUDA, else fp32)")
    parser.add_argument("--llm", choices=sorted(QWEN), default="qwen2.5-72b")
    parser.add_argument("--images", type=int, default=8, help="images timed per step")
    parser.add_argument("--mllm-tokens", type=int, default=256, help="describer max_new_tokens")
    parser.add_argument("--llm-tokens", type=int, default=512, help="LLM max_new_tokens")
    parser.add_argument("--llm-turns", type=int, default=2, help="far turns timed")
    parser.add_argument("--budget", type=int, default=1000, help="L (1000: the default cap)")
    parser.add_argument("--classes", type=int, default=1000, help="K, for the near total")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}
    dtype = dtypes[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, MLLM/LLM {dtype}, "
          f"{'tiny' if args.tiny else 'published'} configs")

    describer = llava(args, device, dtype)
    classes = ["goldfish", "tabby cat", "school bus", "espresso"]
    near_prompts = [P.near_chat(classes[i % 4], 3, with_image=True)[-1]["content"]
                    for i in range(args.images)]
    near = per_image(describer, imagenet_like(args.images), near_prompts, device)
    print(f"MLLM near answer: {near:.3f} s/image (batch {describer.batch_size})")
    sd, rendered = render(args, device)
    print(f"SD-1.5 render: {sd:.3f} s/image")
    elaborate = per_image(describer, rendered, [P.elaborate_prompt(BROAD, 10)] * len(rendered),
                          device)
    print(f"MLLM elaborate answer: {elaborate:.3f} s/image")
    del describer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    llm = envision(args, device, dtype)

    budget = args.budget
    reps, rounds = min(50, max(1, budget // 10)), 3
    turns = min(10, math.ceil(budget / min(50, budget)))
    far_images = reps * rounds * (sd + elaborate)
    print(f"\nnear branch, {args.classes} classes x 1 train image: {args.classes * near:.1f} s")
    print(f"far branch, L = {budget}: {reps} renders x {rounds} rounds: {far_images:.1f} s "
          f"({(sd + elaborate):.3f} s per rendered image)")
    if llm is not None:
        broad, turn = llm
        total = broad + turns * turn + far_images
        print(f"  + LLM: broad {broad:.1f} s, {turns} far turns x {turn:.1f} s "
              f"({turn / 50:.3f} s per sketched label)")
        print(f"  far total {total:.1f} s = {total / budget:.3f} s per label")


if __name__ == "__main__":
    main()

"""Images/s of the real diffusion architectures with random weights (no download).

    python benchmarks/diffusion_throughput.py                 # CUDA: SD-1.5 t2i + SD-2-inpaint
    python benchmarks/diffusion_throughput.py --tiny          # CPU smoke test, tiny configs

Cases (the settings the methods use):
- ``t2i``: SD-1.5 text-to-image (MM-OOD's renders), 512², 50 PNDM steps (51 UNet calls),
  classifier-free guidance 7.5: the whole diffusers pipeline, text encoder to PIL.
- ``inpaint``: SD-2-inpainting (SynOOD), 512², 20 steps at strength 0.6 -> 13 UNet calls,
  guidance 8: the whole diffusers in-painting pipeline.
- ``guided``: SynOOD's energy-guided loop through :class:`DiffusersGenerator`'s latent API:
  K=3 x (13 guided UNet calls -> decode with grad in fp32 -> random ResNet-50 -> backward),
  i.e. ~78 UNet evaluations per image plus three decoder/classifier backward passes.
Each at several batch sizes, in fp16 and fp32 (fp16 only on CUDA), after one warm-up call.
The UNet / VAE / text-encoder configs are the published ones, written inline; the tokenizer is a
character-level stand-in (token ids only steer the random text encoder).
"""

from __future__ import annotations

import argparse
import json
import string
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

# -- published configs (stable-diffusion-v1-5 and stable-diffusion-2-inpainting) ---------------
SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ],
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-5,
    "center_input_sample": False,
}
SD2_INPAINT_UNET = {
    **SD15_UNET,
    "in_channels": 9,
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
}
SD_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512],
    "norm_num_groups": 32,
    "act_fn": "silu",
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
CLIP_L_TEXT = {  # SD-1.5: OpenAI CLIP ViT-L/14 text tower
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
OPENCLIP_H_TEXT = {  # SD-2: OpenCLIP ViT-H/14 text tower, penultimate layer (23 of 24)
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
}
PNDM = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "skip_prk_steps": True,
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "num_train_timesteps": 1000,
}

TINY_UNET = {
    "sample_size": 8,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [16, 32],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
}
TINY_VAE = {
    **SD_VAE,
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "sample_size": 64,
}
TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
    "projection_dim": 32,
}


def tokenizer(folder: Path) -> Any:
    """A character-level CLIP tokenizer (the real vocabulary would need a download)."""
    from transformers import CLIPTokenizer

    chars = list(string.ascii_lowercase + string.digits + ".,' ")
    vocab = {
        tok: i
        for i, tok in enumerate(
            ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
        )
    }
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


def build_pipeline(case: str, tiny: bool, folder: Path) -> Any:
    """A random-weight SD pipeline with the published architecture of ``case``."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    inpaint = case != "t2i"
    if tiny:
        unet_cfg = {**TINY_UNET, "in_channels": 9 if inpaint else 4}
        vae_cfg, text_cfg = TINY_VAE, TINY_TEXT
    else:
        unet_cfg = SD2_INPAINT_UNET if inpaint else SD15_UNET
        vae_cfg, text_cfg = SD_VAE, OPENCLIP_H_TEXT if inpaint else CLIP_L_TEXT
    torch.manual_seed(0)
    tok = tokenizer(folder)
    text = CLIPTextModel(
        CLIPTextConfig(vocab_size=49408, eos_token_id=1, bos_token_id=0, pad_token_id=1, **text_cfg)
    )
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    return cls(
        vae=AutoencoderKL(**vae_cfg),
        text_encoder=text,
        tokenizer=tok,
        unet=UNet2DConditionModel(**unet_cfg),
        scheduler=PNDMScheduler(**PNDM),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_generator(
    pipe: Any, case: str, size: int, steps: int, batch: int, device: torch.device
) -> Any:
    from oodbench.generative.diffusion import DiffusersGenerator

    if case == "t2i":
        gen = DiffusersGenerator(steps=steps, guidance=7.5, size=size, batch_size=batch)
    else:
        gen = DiffusersGenerator(
            steps=steps, guidance=8.0, strength=0.6, size=size, batch_size=batch
        )
    gen.use_pipeline(pipe, device)
    return gen


def run_case(gen: Any, case: str, batch: int, classifier: Any, iterations: int) -> float:
    """One timed call of ``batch`` images; returns seconds."""
    from PIL import Image

    prompts = ["a photo only remain bamboo, tourists, railings."] * batch
    seeds = list(range(batch))
    images = [Image.new("RGB", (gen.size, gen.size), (120, 140, 90))] * batch
    sync(gen.device)
    start = time.perf_counter()
    if case == "t2i":
        gen.text_to_image(prompts, seeds)
    elif case == "inpaint":
        gen.inpaint(images, prompts, seeds, masks=None)
    else:  # SynOOD's energy-guided restarts, as oodbench_synood.guidance runs them
        z0 = gen.encode(torch.rand(batch, 3, gen.resolution, gen.resolution, device=gen.device))
        eps = torch.cat([gen.noise(1, s) for s in seeds])
        for _ in range(iterations):
            z = gen.denoise(z0, eps, prompts).detach().float().requires_grad_(True)
            with torch.enable_grad():
                x = gen.decode(z).clamp(0, 1)
                logits = classifier(torch.nn.functional.interpolate(x, size=224))
                energy = logits.mean(1) - torch.logsumexp(logits, 1)
                (grad,) = torch.autograd.grad((-5.0 - energy).square().mean(), z)
            eps = eps - 10.0 * grad.to(eps)
        gen.to_images(x.detach())
    sync(gen.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="tiny configs, 64², 2-4 steps (CPU)")
    parser.add_argument("--cases", default="t2i,inpaint,guided")
    parser.add_argument("--batch-sizes", default=None, help="default 1,4,8,16 (tiny: 1,2)")
    parser.add_argument("--dtypes", default="float16,float32")
    parser.add_argument("--device", default=None, help="default cuda if available, else cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = 64 if args.tiny else 512
    steps = {"t2i": 2 if args.tiny else 50, "inpaint": 4 if args.tiny else 20}
    steps["guided"] = steps["inpaint"]
    batches = [
        int(b) for b in (args.batch_sizes or ("1,2" if args.tiny else "1,4,8,16")).split(",")
    ]
    dtypes = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}
    import torchvision

    rows = []
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, size {size}")
    for case in args.cases.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            base = build_pipeline(case, args.tiny, Path(tmp))
        for dtype_name in args.dtypes.split(","):
            dtype = dtypes[dtype_name]
            if device.type == "cpu" and dtype == torch.float16:
                print(f"{case} {dtype_name}: skipped on the CPU")
                continue
            pipe = base
            for module in (pipe.unet, pipe.vae, pipe.text_encoder):  # module-wise: no warnings
                module.to(device=device, dtype=dtype)
            classifier = None
            if case == "guided":  # SynOOD's frozen ImageNet ResNet-50 (random here), fp32
                classifier = torchvision.models.resnet50().to(device).eval().requires_grad_(False)
            for batch in batches:
                row = {
                    "case": case,
                    "dtype": dtype_name,
                    "batch": batch,
                    "size": size,
                    "steps": steps[case],
                    "device": str(device),
                }
                gen = make_generator(pipe, case, size, steps[case], batch, device)
                try:
                    run_case(gen, case, batch, classifier, 1)  # warm-up
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    seconds = run_case(gen, case, batch, classifier, 3)
                    row.update(seconds=round(seconds, 3), images_per_s=round(batch / seconds, 3))
                    if device.type == "cuda":
                        row["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                except torch.cuda.OutOfMemoryError:
                    row["error"] = "out of memory"
                    torch.cuda.empty_cache()
                rows.append(row)
                print(json.dumps(row), flush=True)
            for module in (pipe.unet, pipe.vae, pipe.text_encoder):
                module.to(dtype=torch.float32)
            del classifier
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print("\n| case | dtype | batch | images/s | s/call | peak GiB |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['dtype']} | {r['batch']} | {r.get('images_per_s', '-')} | "
            f"{r.get('seconds', r.get('error', '-'))} | {r.get('peak_gib', '-')} |"
        )


if __name__ == "__main__":
    main()

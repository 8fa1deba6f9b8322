"""Encoding throughput of oodbench vs a plain per-method loop (issue: real backbones).

Generates JPEGs of ImageNet-like sizes, then measures, for a random-initialised open_clip
architecture (weights do not change the speed):
  1. the model alone (fp32 / bf16 autocast / fp16) on the device, images/s;
  2. decode + preprocess alone (no model), images/s, per decode mode: ``cpu`` = PIL in the
     DataLoader workers, ``gpu`` = workers read bytes, the device decodes the JPEGs
     (torchvision.io.decode_jpeg: nvJPEG on CUDA) and resizes them as tensors (--decode gpu);
  3. oodbench's end-to-end encode (decode + preprocess + model, the FeatureStore path every
     method uses), per dtype x decode mode;
  4. a plain loop in the style of the MCM reference code (fp32, default DataLoader settings,
     same images), and the ratio oodbench / plain;
  5. a second method on the already-encoded set (feature cache hit), seconds.

    python benchmarks/throughput.py --images 2000 --device cuda      # the GPU figures
    python benchmarks/throughput.py --images 200 --device cpu        # a CPU smoke run

With ``--device cpu`` the ``gpu`` decode mode decodes in the main process with libjpeg-turbo:
that checks the code path, not the speed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.cache import ArtifactCache
from oodbench.data.sources import ImageList, resolve_source
from oodbench.decode import JpegBytesDataset, TensorDecoder, collate_raw
from oodbench.encoding import ImageDataset, collate
from oodbench.features import FeatureStore
from oodbench.types import RunContext

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_jpegs(folder: Path, count: int, seed: int = 0) -> None:
    """Smooth random images at ImageNet's typical sizes (~110 KB JPEGs at 500x375)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(500, 375), (500, 333), (375, 500), (640, 480)]
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        small = rng.integers(0, 255, size=(h // 8, w // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        img.save(folder / f"img_{i:06d}.jpg", quality=90)


def model_only(backbone: OpenCLIPBackbone, device: torch.device, dtype: torch.dtype,
               batch: int, steps: int) -> float:
    model = backbone._loaded
    if dtype == torch.float16 and device.type == "cuda":
        model = model.half()
    x = torch.randn(batch, 3, 224, 224, device=device, dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        for _ in range(2):
            _run(model, x, device, dtype)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            _run(model, x, device, dtype)
        _sync(device)
    model.float()
    return batch * steps / (time.perf_counter() - start)


def _run(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
         dtype: torch.dtype) -> torch.Tensor:
    if device.type == "cuda" and dtype == torch.bfloat16:
        with torch.autocast("cuda", dtype=dtype):
            return model.encode_image(x)
    return model.encode_image(x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def decode_only(backbone: OpenCLIPBackbone, images: ImageList, ctx: RunContext) -> float:
    """Images/s of decode + preprocess to device tensors, without the model."""
    preprocess = backbone.preprocess()
    prefetch = 4 if ctx.num_workers > 0 else None
    start = time.perf_counter()
    if ctx.decode == "gpu":
        spec = backbone.tensor_preprocess()
        assert spec is not None, "this backbone has no tensor preprocessing"
        decoder = TensorDecoder(spec, ctx.device, images, preprocess)
        loader = DataLoader(JpegBytesDataset(images, preprocess), batch_size=ctx.batch_size,
                            num_workers=ctx.num_workers, collate_fn=collate_raw,
                            prefetch_factor=prefetch)
        for raw in loader:
            decoder(raw)
    else:
        loader = DataLoader(ImageDataset(images, preprocess), batch_size=ctx.batch_size,
                            num_workers=ctx.num_workers, collate_fn=collate,
                            pin_memory=ctx.device.type == "cuda", prefetch_factor=prefetch)
        for batch in loader:
            batch["pixels"].to(ctx.device, non_blocking=True)
    _sync(ctx.device)
    return len(images) / (time.perf_counter() - start)


class _PlainFolder(Dataset):
    """What the reference scripts do: PIL open + the CLIP transform, one image at a time."""

    def __init__(self, files: list[Path], transform) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(Image.open(self.files[i]).convert("RGB"))


def plain_loop(backbone: OpenCLIPBackbone, files: list[Path], device: torch.device,
               batch: int) -> float:
    loader = DataLoader(_PlainFolder(files, backbone.preprocess()), batch_size=batch,
                        num_workers=4 if device.type == "cuda" else 0)
    start = time.perf_counter()
    with torch.no_grad():
        for x in loader:
            feats = backbone._loaded.encode_image(x.to(device))
            feats = feats / feats.norm(dim=-1, keepdim=True)
            feats.cpu()
    _sync(device)
    return len(files) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=RunContext.default_workers())
    parser.add_argument("--folder", type=Path, default=None, help="reuse generated JPEGs")
    parser.add_argument("--decode", choices=["cpu", "gpu", "both"], default="both",
                        help="decode modes to compare (see --decode of `oodbench run`)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    folder = args.folder or Path(tempfile.mkdtemp(prefix="oodbench-jpegs-"))
    if len(list(folder.glob("*.jpg"))) < args.images:
        t = time.perf_counter()
        make_jpegs(folder, args.images)
        print(f"generated {args.images} JPEGs in {time.perf_counter() - t:.1f}s at {folder}")
    backbone = OpenCLIPBackbone(model=args.model, pretrained="")
    backbone.load(device)
    dtypes = ["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32"]
    decodes = ["cpu", "gpu"] if args.decode == "both" else [args.decode]
    print(f"device {device}, model {args.model} (random init), batch {args.batch_size}, "
          f"workers {args.workers}, torch {torch.__version__}")
    steps = 10 if device.type == "cuda" else 2
    for name in dtypes:
        ips = model_only(backbone, device, DTYPES[name], args.batch_size, steps)
        print(f"model only        {name}: {ips:9.1f} img/s")
    images = resolve_source({"type": "imagefolder", "root": str(folder)}, "bench", None)
    images = images.subset(range(args.images), "bench")
    # a short run first: worker start-up and nvJPEG / CUDA initialisation are not per image
    warm = 2 * args.batch_size if device.type == "cuda" else 4
    warmup = images.subset(range(min(args.images, warm)), "warmup")

    def context(dtype: str, decode: str, cache: ArtifactCache) -> RunContext:
        return RunContext(device=device, dtype=DTYPES[dtype], batch_size=args.batch_size,
                          num_workers=args.workers, cache_dir=cache.root, decode=decode)

    for decode in decodes:
        ctx = context("fp32", decode, ArtifactCache(Path(tempfile.mkdtemp())))
        decode_only(backbone, warmup, ctx)
        ips = decode_only(backbone, images, ctx)
        print(f"decode+preprocess {decode} decode: {ips:9.1f} img/s (no model)")
    results = {}
    for name in dtypes:
        for decode in decodes:
            label = f"{name} {decode} decode"
            scratch = ArtifactCache(Path(tempfile.mkdtemp()))
            FeatureStore(scratch, log=lambda _: None).images(
                backbone, warmup, context(name, decode, scratch))
            cache = ArtifactCache(Path(tempfile.mkdtemp(prefix="oodbench-cache-")))
            store = FeatureStore(cache, log=lambda note: print(f"  note: {note}"))
            ctx = context(name, decode, cache)
            start = time.perf_counter()
            store.images(backbone, images, ctx)
            _sync(device)
            results[label] = args.images / (time.perf_counter() - start)
            where = (f"decode in {args.workers} workers" if decode == "cpu" else
                     f"bytes read in {args.workers} workers, {store.stats.decoded_on_device} "
                     f"decoded on {device}, {store.stats.decoded_with_pil} via PIL")
            print(f"oodbench encode   {label}: {results[label]:9.1f} img/s ({where} + model, "
                  f"end to end)")
            start = time.perf_counter()
            store.images(backbone, images, ctx)
            print(f"second method (cache hit) {label}: {time.perf_counter() - start:.3f} s")
    files = sorted(folder.glob("*.jpg"))[: args.images]
    plain = plain_loop(backbone, files, device, args.batch_size)
    print(f"plain MCM-style loop fp32: {plain:9.1f} img/s")
    best = max(results, key=lambda k: results[k])
    print(f"ratio oodbench ({best}) / plain: {results[best] / plain:.2f}x")
    for name in dtypes:
        if {"cpu", "gpu"} <= set(decodes):
            gain = results[f"{name} gpu decode"] / results[f"{name} cpu decode"]
            print(f"gpu / cpu decode, end to end {name}: {gain:.2f}x")


if __name__ == "__main__":
    main()

"""Image encoding loops: images (or some rows of a list) -> normalised features.

Two paths: ``--decode cpu`` (PIL decoding and preprocessing in the DataLoader workers) and
``--decode gpu`` (workers read JPEG bytes, the device decodes and resizes them). Both encode in
batches of ``ctx.batch_size``, halving the chunk on CUDA out-of-memory, and report images that
could not be read instead of failing. Caching is :mod:`oodbench.features`' job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from oodbench.backbones.base import Backbone, TensorPreprocess
from oodbench.data.sources import ImageList
from oodbench.decode import JpegBytesDataset, TensorDecoder, collate_raw, pil_pixels
from oodbench.errors import ResourceError
from oodbench.types import RunContext

Progress = Callable[[int, int], None]  # (done, total)
Encoded = tuple[torch.Tensor, list[int], list[tuple[int, str]]]  # features, kept rows, skipped
_MAX_QUEUED = 2  # --decode gpu: batches queued on the device ahead of the one being decoded


@dataclass
class EncodeStats:
    images_encoded: int = 0
    texts_encoded: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # --decode gpu: images decoded + preprocessed as tensors on the device, and images that
    # took the PIL path instead (not plain JPEGs, decoder failures)
    decoded_on_device: int = 0
    decoded_with_pil: int = 0
    # one-line notes for the log / result record (e.g. why --decode gpu fell back to the CPU)
    notes: list[str] = field(default_factory=list)


class ImageDataset(Dataset):
    """Decodes and preprocesses images; an unreadable image yields its error instead."""

    def __init__(self, images: ImageList, preprocess: Callable[[Any], torch.Tensor]) -> None:
        self.images, self.preprocess = images, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        # corrupt file, truncated JPEG, wrong mode...: no pixels, and the reason why
        pixels, error = pil_pixels(self.images, self.preprocess, index)
        return index, pixels, error


def collate(batch: list[tuple[int, torch.Tensor | None, str]]) -> dict[str, Any]:
    ok = [(i, t) for i, t, _ in batch if t is not None]
    return {
        "index": [i for i, _ in ok],
        "pixels": torch.stack([t for _, t in ok]) if ok else None,
        "errors": [(i, e) for i, t, e in batch if t is None],
    }


def _loader(dataset: Dataset, rows: Sequence[int] | None, ctx: RunContext,
            collate_fn: Callable[[list[Any]], Any], pin: bool) -> tuple[DataLoader, int]:
    """Batches of ``dataset`` (only ``rows`` of it when given; items keep their index)."""
    if rows is not None:
        dataset = Subset(dataset, rows)
    loader = DataLoader(
        dataset,
        batch_size=ctx.batch_size,
        num_workers=ctx.num_workers,
        collate_fn=collate_fn,
        pin_memory=pin,
        persistent_workers=False,
        prefetch_factor=4 if ctx.num_workers > 0 else None,
    )
    return loader, len(dataset)  # type: ignore[arg-type]


def encode_images(backbone: Backbone, images: ImageList, ctx: RunContext, stats: EncodeStats,
                  progress: Progress | None, rows: Sequence[int] | None = None) -> Encoded:
    """The ``--decode cpu`` loop: workers decode and preprocess with PIL."""
    loader, total = _loader(ImageDataset(images, backbone.preprocess()), rows, ctx, collate,
                            pin=ctx.device.type == "cuda")
    chunks: list[torch.Tensor] = []
    kept: list[int] = []
    skipped: list[tuple[int, str]] = []
    done = 0
    chunk_size = ctx.batch_size
    for batch in loader:
        skipped += batch["errors"]
        if batch["pixels"] is not None:
            out, chunk_size = encode_with_fallback(backbone, batch["pixels"], ctx, chunk_size)
            chunks.append(out)
            kept += batch["index"]
            stats.images_encoded += len(batch["index"])
        done += len(batch["index"]) + len(batch["errors"])
        if progress:
            progress(done, total)
    stats.skipped += len(skipped)
    feats = torch.cat(chunks) if chunks else torch.zeros(0, backbone.embed_dim)
    return feats, kept, skipped


def encode_images_gpu(backbone: Backbone, images: ImageList, ctx: RunContext,
                      stats: EncodeStats, spec: TensorPreprocess, progress: Progress | None,
                      rows: Sequence[int] | None = None) -> Encoded:
    """The ``--decode gpu`` loop: workers read bytes, the device decodes and resizes."""
    preprocess = backbone.preprocess()  # the per-image PIL fallback
    loader, total = _loader(JpegBytesDataset(images, preprocess), rows, ctx, collate_raw,
                            pin=False)
    decoder = TensorDecoder(spec, ctx.device, images, preprocess)
    chunks: list[torch.Tensor] = []
    kept: list[int] = []
    skipped: list[tuple[int, str]] = []
    done = 0
    chunk_size = ctx.batch_size
    # the host does not wait for the model (decoding overlaps it); bound the batches queued
    # on the device so their pixels do not pile up in GPU memory
    queued: deque[torch.cuda.Event] = deque()
    for raw in loader:
        if len(queued) >= _MAX_QUEUED:
            queued.popleft().synchronize()
        batch = decoder(raw)
        skipped += batch.errors
        stats.decoded_on_device += batch.on_device
        stats.decoded_with_pil += batch.with_pil
        if batch.pixels is not None:
            out, chunk_size = encode_with_fallback(backbone, batch.pixels, ctx, chunk_size,
                                                   to_cpu=False)
            chunks.append(out)
            if ctx.device.type == "cuda":
                queued.append(torch.cuda.Event())
                queued[-1].record()
            kept += batch.index
            stats.images_encoded += len(batch.index)
        done += raw.size
        if progress:
            progress(done, total)
    stats.skipped += len(skipped)
    feats = torch.cat(chunks).cpu() if chunks else torch.zeros(0, backbone.embed_dim)
    return feats, kept, skipped


def encode_with_fallback(backbone: Backbone, pixels: torch.Tensor, ctx: RunContext,
                         chunk: int, to_cpu: bool = True) -> tuple[torch.Tensor, int]:
    """Encode in chunks; on CUDA out-of-memory halve the chunk and retry, down to 1."""
    outputs = []
    start = 0
    while start < pixels.shape[0]:
        part = pixels[start : start + chunk]
        try:
            outputs.append(encode_batch(backbone, part, ctx, to_cpu))
            start += part.shape[0]
        except torch.cuda.OutOfMemoryError:
            if chunk == 1:
                raise ResourceError(
                    "Out of GPU memory encoding a single image; use a smaller backbone, "
                    "--dtype float16, or --device cpu."
                ) from None
            torch.cuda.empty_cache()
            chunk = max(1, chunk // 2)
    return torch.cat(outputs), chunk


def autocast_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype | None:
    """The dtype images are encoded under ``torch.autocast`` in (None: no autocast)."""
    if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        return dtype
    return None


def compute_key_part(device: torch.device, dtype: torch.dtype) -> dict[str, str] | None:
    """What the image-feature key adds for a run's numerics: the run dtype (a backbone may load
    its weights in it, as the mini one does) and the autocast mode of :func:`encode_batch`.
    None for float32, so float32 caches keep their keys; features computed in float16 or
    bfloat16 are never reused for another dtype, nor float32 ones for them."""
    if dtype == torch.float32:
        return None
    autocast = autocast_dtype(device, dtype)
    return {"dtype": str(dtype).replace("torch.", ""),
            "autocast": str(autocast).replace("torch.", "") if autocast else "none"}


def encode_batch(backbone: Backbone, pixels: torch.Tensor, ctx: RunContext,
                 to_cpu: bool = True) -> torch.Tensor:
    pixels = pixels.to(ctx.device, non_blocking=True)
    with torch.no_grad():
        autocast = autocast_dtype(ctx.device, ctx.dtype)
        if autocast is not None:
            with torch.autocast("cuda", dtype=autocast):
                feats = backbone.encode_images(pixels)
        else:
            feats = backbone.encode_images(pixels)
    feats = torch.nn.functional.normalize(feats.float(), dim=-1)
    # the GPU decode loop keeps features on the device: .cpu() would wait for the model and
    # keep the next batch's decoding from overlapping it
    return feats.cpu() if to_cpu else feats

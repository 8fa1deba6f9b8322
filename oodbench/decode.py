"""Optional GPU JPEG decoding for image encoding (``--decode gpu``, ``RunContext.decode``).

CPU path (the default): DataLoader workers open each file with PIL and run the backbone's
``preprocess()``. On an H100 that is the bottleneck (~380 img/s per core with PIL, ~6k img/s on
16 cores, against ~10k img/s for a ViT-B/16 in fp16).

GPU path: workers only read each file's bytes and look at its JPEG header; the main process
decodes the batch's JPEGs in one call to ``torchvision.io.decode_jpeg(..., device=ctx.device)``
(nvJPEG on CUDA, libjpeg-turbo on the CPU, where the tests run it) and applies the backbone's
:class:`~oodbench.backbones.base.TensorPreprocess` as tensor ops on that device.

Which image takes which path, so that every image is kept or skipped as on the CPU path:

* not a plain JPEG (PNG, GIF, CMYK/YCCK or MPO JPEGs, no end-of-image marker near the end of
  the file, i.e. likely truncated, a header PIL rejects, an unreadable file): the CPU path's own
  PIL preprocessing, in the worker, so its pixels, its skip decision and its reason are the CPU
  path's;
* a JPEG the decoder rejects: the same PIL preprocessing, in the main process;
* every other JPEG: decoded and preprocessed on the device.
The one case that could differ is a JPEG with an intact header and end marker whose entropy data
PIL rejects while the decoder accepts it (libjpeg and nvJPEG both tolerate most such damage).

Cache key. Tensor resizing (torch's antialiased kernel in float32, in two rounded passes as
PIL's) and PIL's fixed-point resize still differ by one 8-bit level on ~0.01 % of values (tests:
ViT-B/16's transform), CUDA's float kernels may round differently again, and nvJPEG's IDCT and
chroma upsampling differ from libjpeg-turbo's. So features from this path can differ slightly
from the CPU path's (as fp16 vs fp32 features do, but systematically per file): its cache key
adds the tensor spec and the decoding device type (:func:`decode_key_part`). The CPU path's
key is unchanged, so existing caches stay valid. A dataset or backbone that falls back to the
CPU path as a whole (Hugging Face images, preprocessing without a tensor spec) uses the CPU key.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from oodbench.backbones.base import Backbone, TensorPreprocess
from oodbench.data.sources import ImageList
from oodbench.errors import OODBenchError
from oodbench.types import RunContext

DECODE_MODES = ("cpu", "gpu")
# a JPEG's end-of-image marker must lie this close to the end of the file; farther (long
# trailers) or missing (truncation) sends the file to PIL, which decides as on the CPU path
_EOI_TAIL = 1024
# decoded pixels resized at once (per same-sized group): bounds device memory on huge photos
_PIXEL_BUDGET = 1 << 25


def describe_error(exc: BaseException) -> str:
    """The one-line skip reason recorded for an unreadable image (same on both paths)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def pil_pixels(images: ImageList, preprocess: Any, index: int) -> tuple[torch.Tensor | None, str]:
    """The CPU path for one image: PIL decode + the backbone's preprocess, or (None, why)."""
    try:
        return preprocess(images.open(index)), ""
    except Exception as exc:  # corrupt file, truncated JPEG, wrong mode...: skip, record why
        return None, describe_error(exc)


def plain_jpeg(data: bytes) -> bool:
    """Whether ``data`` is a JPEG the tensor decoder should take (3-channel or grey, whole)."""
    if not data.startswith(b"\xff\xd8\xff") or b"\xff\xd9" not in data[-_EOI_TAIL:]:
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:  # parses the header only: cheap
            # PIL names YCbCr JPEGs "RGB"; CMYK/YCCK ones "CMYK" (nvJPEG has no CMYK path)
            return img.format == "JPEG" and img.mode in ("RGB", "L")
    except Exception:  # a header PIL rejects: let PIL reject it again, as on the CPU path
        return False


def decode_plan(backbone: Backbone, images: ImageList,
                ctx: RunContext) -> tuple[TensorPreprocess | None, str]:
    """(tensor spec, "") when ``images`` take the GPU path, else (None, why not; "" if cpu)."""
    if ctx.decode not in DECODE_MODES:
        raise OODBenchError(f"decode must be one of {', '.join(DECODE_MODES)}, "
                            f"not {ctx.decode!r}.")
    if ctx.decode == "cpu":
        return None, ""
    if images.hf_dataset is not None:
        return None, (f"decode gpu: {images.name} holds Hugging Face images in memory, not "
                      f"files; they are decoded on the CPU path")
    spec = backbone.tensor_preprocess()
    if spec is None:
        return None, (f"decode gpu: backbone {backbone.name!r} has preprocessing that tensor "
                      f"ops cannot reproduce; images are decoded on the CPU path (PIL)")
    return spec, ""


def decode_key_part(spec: TensorPreprocess, device: torch.device) -> dict[str, Any]:
    """What the GPU path adds to a feature cache key (see the module docstring)."""
    return {"decode": "tensor", "decoder": device.type, "preprocess": spec.as_dict()}


@dataclass
class RawItem:
    """A worker's answer for one image: JPEG bytes, or PIL-preprocessed pixels, or an error."""

    index: int
    data: bytes = b""  # the file, for the tensor decoder
    pixels: torch.Tensor | None = None  # the CPU path's output (not a plain JPEG)
    error: str = ""


class JpegBytesDataset(Dataset):
    """Reads file bytes; only files that are not plain JPEGs are decoded here, with PIL."""

    def __init__(self, images: ImageList, preprocess: Any) -> None:
        self.images, self.preprocess = images, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> RawItem:
        try:
            with open(self.images.keys[index], "rb") as handle:
                data = handle.read()
        except OSError:
            data = b""  # PIL fails on it again below, with the CPU path's message
        if plain_jpeg(data):
            return RawItem(index, data=data)
        pixels, error = pil_pixels(self.images, self.preprocess, index)
        return RawItem(index, pixels=pixels, error=error)


@dataclass
class RawBatch:
    """A batch as a worker hands it over.

    The JPEG files travel as one concatenated uint8 tensor (one shared-memory block per batch:
    one per image would cost a file descriptor each, thousands in flight with 15 workers);
    the PIL-path pixels are stacked, as the CPU path's batches are.
    """

    size: int
    jpeg_index: list[int]
    jpeg_bytes: torch.Tensor  # uint8 [total bytes]
    jpeg_ends: list[int]  # end offset of each file in jpeg_bytes
    pil_index: list[int]
    pil_pixels: torch.Tensor | None  # [n, 3, H, W]
    errors: list[tuple[int, str]]

    def jpegs(self) -> list[torch.Tensor]:
        """One uint8 view per JPEG file, as decode_jpeg takes them."""
        starts = [0, *self.jpeg_ends][: len(self.jpeg_ends)]
        return [self.jpeg_bytes[a:b] for a, b in zip(starts, self.jpeg_ends, strict=True)]


def collate_raw(items: list[RawItem]) -> RawBatch:
    """Runs in the worker: pack a batch of :class:`RawItem` into a :class:`RawBatch`."""
    items = sorted(items, key=lambda it: it.index)
    jpegs = [it for it in items if it.data]
    blob = bytearray()
    ends = []
    for it in jpegs:
        blob += it.data
        ends.append(len(blob))
    pil = [it for it in items if it.pixels is not None]
    return RawBatch(
        size=len(items),
        jpeg_index=[it.index for it in jpegs],
        jpeg_bytes=torch.frombuffer(blob, dtype=torch.uint8) if blob else
        torch.zeros(0, dtype=torch.uint8),
        jpeg_ends=ends,
        pil_index=[it.index for it in pil],
        pil_pixels=torch.stack([it.pixels for it in pil if it.pixels is not None]) if pil
        else None,
        errors=[(it.index, it.error) for it in items if it.error],
    )


@dataclass
class DecodedBatch:
    index: list[int]  # dataset indices of the rows of ``pixels``, in order
    pixels: torch.Tensor | None  # [N, 3, H, W] float32 on the device
    errors: list[tuple[int, str]]  # (index, why), in index order as on the CPU path
    on_device: int = 0  # images decoded and preprocessed as tensors
    with_pil: int = 0  # images that took the PIL path (in a worker or here)


class TensorDecoder:
    """Decodes a :class:`RawBatch` on ``device`` and preprocesses it with ``spec``.

    On CUDA the work runs on a side stream and the caller's stream waits for it, so the caller
    may queue the model on batch N and decode batch N+1 without waiting for the model: the
    JPEG engine and the SMs then work at the same time (serially, decode + model would cost
    about as much as PIL decoding in parallel with the model).
    """

    def __init__(self, spec: TensorPreprocess, device: torch.device, images: ImageList,
                 preprocess: Any) -> None:
        self.spec, self.device = spec, device
        self.images, self.preprocess = images, preprocess
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def __call__(self, raw: RawBatch) -> DecodedBatch:
        if self.stream is None:
            return self._batch(raw)
        with torch.cuda.stream(self.stream):
            batch = self._batch(raw)
        consumer = torch.cuda.current_stream(self.device)
        consumer.wait_stream(self.stream)
        if batch.pixels is not None:
            # allocated on the side stream, read on the caller's: keep its memory from being
            # handed out again on the side stream before the caller's kernels have read it
            batch.pixels.record_stream(consumer)
        return batch

    def _batch(self, raw: RawBatch) -> DecodedBatch:
        tensors: list[torch.Tensor] = []
        tensor_index: list[int] = []
        errors = list(raw.errors)
        pil: dict[int, torch.Tensor] = {}
        if raw.pil_pixels is not None:
            pil = dict(zip(raw.pil_index, raw.pil_pixels.to(self.device), strict=True))
        for index, image in zip(raw.jpeg_index, self.decode(raw.jpegs()), strict=True):
            if image is None or image.shape[0] != 3:  # rejected: the CPU path decides, here
                pixels, error = pil_pixels(self.images, self.preprocess, index)
                if pixels is None:
                    errors.append((index, error))
                else:
                    pil[index] = pixels.to(self.device)
            else:
                tensors.append(image)
                tensor_index.append(index)
        pixels = preprocess_tensors(tensors, self.spec) if tensors else None
        index_order = tensor_index
        if pil:  # merge the PIL-path rows back in, in dataset order
            rows = dict(zip(tensor_index, pixels if pixels is not None else [], strict=True))
            rows.update(pil)
            index_order = sorted(rows)
            pixels = torch.stack([rows[i] for i in index_order])
        return DecodedBatch(index_order, pixels, sorted(errors), on_device=len(tensors),
                            with_pil=len(pil))

    def decode(self, datas: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """uint8 RGB [3, H, W] per input on the device; None where the decoder fails."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not datas:
            return []
        if self.stream is not None:
            # nvJPEG's hardware decoder can write its outputs while work queued earlier on its
            # stream still reads memory the caching allocator has just recycled
            # (pytorch/vision#9606): drain the side stream first (only the previous batch's
            # resizing is queued there)
            self.stream.synchronize()
        try:
            return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device))
        except (RuntimeError, TypeError, ValueError):
            pass  # one bad image fails the whole batch (or no list support): one at a time
        out: list[torch.Tensor | None] = []
        for data in datas:
            try:
                out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device))
            except RuntimeError:
                out.append(None)
        return out


def resized_size(height: int, width: int, spec: TensorPreprocess) -> tuple[int, int]:
    """(height, width) after the resize step, computed as torchvision's ``Resize`` does."""
    if not isinstance(spec.size, int):
        return spec.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = spec.size, int(spec.size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def _crop_start(length: int, crop: int, how: str) -> int:
    # torchvision: int(round(...)) (banker's rounding on .5); transformers: int(...) (floor)
    return round((length - crop) / 2.0) if how == "round" else int((length - crop) / 2.0)


def resize_crop(x: torch.Tensor, spec: TensorPreprocess) -> torch.Tensor:
    """[N, 3, H, W] float 8-bit levels -> resized (levels rounded as PIL's), centre-cropped."""
    height, width = x.shape[-2:]
    new_h, new_w = resized_size(height, width, spec)
    # PIL resizes in two 8-bit passes, horizontal then vertical, rounding after each: doing the
    # same brings tensor and PIL outputs from ~15 % of values one level apart to ~0.01 %.
    # A pass whose size does not change is skipped, as PIL (and torchvision) skip it.
    if new_w != width:
        x = _rounded(F.interpolate(x, size=(height, new_w), mode=spec.interpolation,
                                   align_corners=False, antialias=spec.antialias))
    if new_h != height:
        x = _rounded(F.interpolate(x, size=(new_h, new_w), mode=spec.interpolation,
                                   align_corners=False, antialias=spec.antialias))
    if spec.crop is not None:
        ch, cw = spec.crop
        top, left = (_crop_start(new_h, ch, spec.crop_offset),
                     _crop_start(new_w, cw, spec.crop_offset))
        x = x[..., top : top + ch, left : left + cw]
    return x


def _rounded(x: torch.Tensor) -> torch.Tensor:
    # 8-bit output as PIL's: round, and clamp bicubic overshoots
    return x.round_().clamp_(0, 255)


def preprocess_tensors(images: list[torch.Tensor], spec: TensorPreprocess) -> torch.Tensor:
    """uint8 [3, H, W] images of any sizes -> [N, 3, h, w] float32, normalised per ``spec``.

    Images of the same size are resized together (one kernel per group, not per image).
    """
    device = images[0].device
    out_h, out_w = spec.output_size
    out = torch.empty(len(images), 3, out_h, out_w, device=device)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault((int(image.shape[-2]), int(image.shape[-1])), []).append(i)
    for (height, width), members in groups.items():
        step = max(1, _PIXEL_BUDGET // (height * width))
        for start in range(0, len(members), step):
            part = members[start : start + step]
            x = torch.stack([images[i] for i in part]).float()
            out[torch.tensor(part, device=device)] = resize_crop(x, spec)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    # same arithmetic as ToTensor + Normalize: x / 255, then (x - mean) / std
    return out.div_(255.0).sub_(mean).div_(std)

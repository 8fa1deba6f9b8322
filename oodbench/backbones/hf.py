"""Hugging Face transformers CLIP / SigLIP backbones, by model id or local folder."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from oodbench.backbones.base import (
    Backbone,
    Interpolation,
    TensorPreprocess,
    encode_texts_halving,
    weights_sha256,
)
from oodbench.errors import MissingDataError, OfflineError
from oodbench.hub import offline_hint, prefer_offline_when_unreachable


class _ProcessorTransform:
    """PIL image -> pixel tensor with the model's own image processor (picklable)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


@dataclasses.dataclass
class HFCLIPBackbone(Backbone):
    """``transformers`` CLIPModel / SiglipModel (any model with get_*_features).

    ``weights`` (the CLI's ``--weights``, as for open_clip) is a local model folder or a hub id
    that replaces ``model_id``.
    """

    name = "hf-clip"
    description = "Hugging Face transformers CLIP/SigLIP by model id or local folder (--weights)."
    model_id: str = "openai/clip-vit-base-patch16"
    revision: str = "main"
    weights: str = ""  # local folder (or hub id); overrides model_id
    interpolation: Interpolation = "model"  # resize filter; "model" = the processor's own

    @property
    def source(self) -> str:
        """What is loaded: ``weights`` if given, else ``model_id``."""
        return self.weights or self.model_id

    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        from transformers import AutoModel, AutoProcessor

        local = Path(self.source).expanduser()
        if self.source.startswith(("/", ".", "~")) and not local.exists():
            raise MissingDataError(f"Backbone folder {self.source} does not exist; pass "
                                   f"--weights with an existing local model folder.")
        if local.exists():
            source = str(local)
        else:  # a hub id: fail at once when the hub is unreachable, not after a minute of retries
            source = self.source
            prefer_offline_when_unreachable()
        try:
            model = AutoModel.from_pretrained(source, revision=self.revision)
            processor = AutoProcessor.from_pretrained(source, revision=self.revision)
        except OSError as exc:
            raise OfflineError(
                f"Cannot load Hugging Face model {self.source!r}"
                f"{'' if local.exists() else offline_hint(unknown='')}: "
                f"{' '.join(str(exc).split())[:140]}. Download it where the hub is reachable "
                f"(or fill the Hugging Face cache and set HF_HUB_OFFLINE=1) and pass "
                f"--weights /local/folder (--backbone-param model_id=/local/folder)."
            ) from None
        self._model = model.to(device).eval()
        own = _resample_name(processor.image_processor.resample)
        self._resize_tag = ""
        if self.interpolation not in ("model", own):  # the processor resizes with this filter
            processor.image_processor.resample = _PIL_RESAMPLE[self.interpolation]
            self._resize_tag = f":resize={self.interpolation}"
        self._processor = processor
        self._device = device
        self._siglip = "siglip" in model.config.model_type

    @property
    def embed_dim(self) -> int:
        config = self._model.config
        return int(getattr(config, "projection_dim", None) or config.text_config.hidden_size)

    @property
    def logit_scale(self) -> float:
        return float(self._model.logit_scale.exp().item())

    def weights_identity(self) -> dict[str, Any] | None:
        """A ``weights`` folder's path and one sha256 over its weight files (each hashed once
        per path, size and mtime); a hub id with its revision; None without ``weights``."""
        if not self.weights:
            return None
        local = Path(self.weights).expanduser()
        if not local.exists():
            return {"id": self.weights, "revision": self.revision}
        files = sorted(local.glob("*.safetensors")) + sorted(local.glob("*.bin"))
        listing = "".join(f"{f.name} {weights_sha256(f)}\n" for f in files)
        digest = hashlib.sha256(listing.encode()).hexdigest()
        return {"path": str(local.resolve()), "sha256": digest, "files": [f.name for f in files]}

    def text_fingerprint(self) -> str:
        local = Path(self.source).expanduser()
        stamp = ""
        if local.exists():
            files = sorted(local.glob("*.safetensors")) + sorted(local.glob("*.bin"))
            stamp = ",".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
        return f"hf:{self.source}@{self.revision}:{stamp}:processor"

    def fingerprint(self) -> str:
        """The weights and processor, and an interpolation other than the processor's own
        (the processor's own keeps the fingerprint, and its feature caches, as before)."""
        return self.text_fingerprint() + getattr(self, "_resize_tag", "")

    def interpolation_used(self) -> str | None:
        return _resample_name(self._processor.image_processor.resample)

    def preprocess(self) -> Callable[[Image.Image], torch.Tensor]:
        return _ProcessorTransform(self._processor.image_processor)

    def tensor_preprocess(self) -> TensorPreprocess | None:
        return hf_tensor_spec(self._processor.image_processor)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = self._model.get_image_features(pixel_values=pixels.to(self.device))
        return torch.nn.functional.normalize(_tensor(feats).float(), dim=-1)

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """GL-MCM's patch features (:mod:`oodbench.backbones.tokens`); CLIP ViTs only."""
        from oodbench.backbones.tokens import hf_clip_patch_tokens

        if self._siglip:
            raise NotImplementedError("GL-MCM patch features need a CLIP ViT with a class "
                                      "token; SigLIP pools with an attention head")
        with torch.no_grad():
            return hf_clip_patch_tokens(self._model, pixels.to(self.device))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return encode_texts_halving(self._encode_text_batch, texts)

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        # SigLIP was trained with max-length padding (it pools the last position); CLIP pads to
        # the longest text. The length is the text model's, as in transformers' own pipeline: a
        # tokenizer without model_max_length (SigLIP 2's Gemma one, a re-saved fast tokenizer)
        # would otherwise neither pad nor truncate.
        if self._siglip:
            length = self._model.config.text_config.max_position_embeddings
            kwargs: dict[str, Any] = {"padding": "max_length", "max_length": length}
        else:
            kwargs = {"padding": True}
        tokens = self._processor.tokenizer(texts, truncation=True, return_tensors="pt",
                                           **kwargs).to(self.device)
        with torch.no_grad():
            feats = self._model.get_text_features(**tokens)
        return torch.nn.functional.normalize(_tensor(feats).float(), dim=-1)


# processors whose steps are exactly resize, centre crop, rescale, normalise (in that order);
# others (crop_pct, padding, tiling...) may do more, so they get no tensor spec
_PLAIN_PROCESSORS = ("CLIPImageProcessor", "SiglipImageProcessor")
_RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL.Image.Resampling values
_PIL_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def _resample_name(value: Any) -> str:
    """"bilinear"/"bicubic"... from a PIL resampling enum or int, or an InterpolationMode."""
    value = getattr(value, "value", value)
    return value if isinstance(value, str) else _RESAMPLE.get(value, str(value))


def _entry(mapping: Any, key: str) -> Any:
    """``size["shortest_edge"]`` for plain dicts (transformers 4) and SizeDicts (5)."""
    return mapping.get(key) if isinstance(mapping, dict) else getattr(mapping, key, None)


def hf_tensor_spec(proc: Any) -> TensorPreprocess | None:
    """The tensor spec of a CLIP/SigLIP image processor, or None if it does anything else."""
    if not type(proc).__name__.startswith(_PLAIN_PROCESSORS):
        return None
    if not getattr(proc, "do_resize", False) or getattr(proc, "do_pad", None):
        return None
    if not getattr(proc, "do_rescale", False) or abs(proc.rescale_factor - 1 / 255) > 1e-9:
        return None
    size = getattr(proc, "size", None) or {}
    shortest, height, width = (_entry(size, k) for k in ("shortest_edge", "height", "width"))
    if _entry(size, "longest_edge") or not (shortest or (height and width)):
        return None
    # PIL resampling enums/ints (2, 3) or torchvision InterpolationMode ("bicubic")
    value = getattr(proc.resample, "value", proc.resample)
    interpolation = value if isinstance(value, str) else _RESAMPLE.get(value)
    crop = None
    if getattr(proc, "do_center_crop", False):
        crop_size = proc.crop_size
        crop = (int(_entry(crop_size, "height")), int(_entry(crop_size, "width")))
    mean: Any = (0.0, 0.0, 0.0)
    std: Any = (1.0, 1.0, 1.0)
    if getattr(proc, "do_normalize", False):
        mean, std = proc.image_mean, proc.image_std
        mean = (mean,) * 3 if isinstance(mean, int | float) else tuple(mean)
        std = (std,) * 3 if isinstance(std, int | float) else tuple(std)
    try:
        return TensorPreprocess(
            size=int(shortest) if shortest else (int(height), int(width)),
            interpolation=interpolation,  # type: ignore[arg-type]
            mean=tuple(map(float, mean)), std=tuple(map(float, std)),  # type: ignore[arg-type]
            resize_mode="shortest" if shortest else "squash", crop=crop,
            crop_offset="floor")  # transformers crops at int((h - crop) / 2), not round()
    except (ValueError, TypeError):  # unknown interpolation, a padding crop...
        return None


def _tensor(output: Any) -> torch.Tensor:
    """Newer transformers may return a model output instead of a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    for attr in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(output, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected feature output {type(output).__name__}")

"""Hugging Face transformers CLIP / SigLIP backbones, by model id or local folder."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from oodbench.backbones.base import Backbone
from oodbench.errors import MissingDataError, OfflineError


class _ProcessorTransform:
    """PIL image -> pixel tensor with the model's own image processor (picklable)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


@dataclasses.dataclass
class HFCLIPBackbone(Backbone):
    """``transformers`` CLIPModel / SiglipModel (any model with get_*_features)."""

    name = "hf-clip"
    description = "Hugging Face transformers CLIP/SigLIP by model id or local folder."
    model_id: str = "openai/clip-vit-base-patch16"
    revision: str = "main"

    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        from transformers import AutoModel, AutoProcessor

        local = Path(self.model_id).expanduser()
        if self.model_id.startswith(("/", ".", "~")) and not local.exists():
            raise MissingDataError(f"Backbone folder {self.model_id} does not exist.")
        try:
            model = AutoModel.from_pretrained(self.model_id, revision=self.revision)
            processor = AutoProcessor.from_pretrained(self.model_id, revision=self.revision)
        except OSError as exc:
            raise OfflineError(
                f"Cannot load Hugging Face model {self.model_id!r}"
                f"{' (HF_HUB_OFFLINE is set)' if os.environ.get('HF_HUB_OFFLINE') else ''}: "
                f"{' '.join(str(exc).split())[:140]}. Download it where the hub is reachable "
                f"and pass --backbone-param model_id=/local/folder."
            ) from None
        self._model = model.to(device).eval()
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

    def fingerprint(self) -> str:
        local = Path(self.model_id).expanduser()
        stamp = ""
        if local.exists():
            files = sorted(local.glob("*.safetensors")) + sorted(local.glob("*.bin"))
            stamp = ",".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
        return f"hf:{self.model_id}@{self.revision}:{stamp}:processor"

    def preprocess(self) -> Callable[[Image.Image], torch.Tensor]:
        return _ProcessorTransform(self._processor.image_processor)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = self._model.get_image_features(pixel_values=pixels.to(self.device))
        return torch.nn.functional.normalize(_tensor(feats).float(), dim=-1)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        # SigLIP was trained with max-length padding; CLIP pads to the longest text
        padding = "max_length" if self._siglip else True
        tokens = self._processor.tokenizer(list(texts), padding=padding, truncation=True,
                                           return_tensors="pt").to(self.device)
        with torch.no_grad():
            feats = self._model.get_text_features(**tokens)
        return torch.nn.functional.normalize(_tensor(feats).float(), dim=-1)


def _tensor(output: Any) -> torch.Tensor:
    """Newer transformers may return a model output instead of a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    for attr in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(output, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected feature output {type(output).__name__}")

"""open_clip backbones: any model name + pretrained tag, or a local checkpoint.

Trap (METHODS.md §1): ``ViT-B-16`` with tag ``openai`` only warns that the weights expect
QuickGELU and then computes wrong embeddings, so the presets use the ``-quickgelu`` names.
"""

from __future__ import annotations

import dataclasses
import os
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
    resize_interpolation,
    with_interpolation,
)
from oodbench.cache import content_key
from oodbench.errors import MissingDataError, OfflineError, OODBenchError


@dataclasses.dataclass
class OpenCLIPBackbone(Backbone):
    """An open_clip model; ``pretrained`` is a tag (``openai``, ``laion2b_s34b_b88k``...)."""

    name = "openclip"
    description = "Any open_clip model + pretrained tag or local checkpoint (--weights)."
    model: str = "ViT-B-16-quickgelu"
    pretrained: str = "openai"  # "" = random initialisation (timing and tests)
    weights: str = ""  # local checkpoint path; overrides `pretrained`
    interpolation: Interpolation = "model"  # resize filter; "model" = open_clip's (bicubic)

    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        import open_clip

        source = self.weights or self.pretrained or None
        if self.weights and not Path(self.weights).exists():
            raise MissingDataError(f"Backbone checkpoint {self.weights} does not exist.")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model, pretrained=source, device=device
            )
        except RuntimeError as exc:
            if "unknown model" in str(exc).lower() or "Model config" in str(exc):
                raise OODBenchError(f"open_clip has no model {self.model!r}; see "
                                    f"open_clip.list_models().") from None
            raise self._offline(exc) from None
        except (OSError, ValueError) as exc:
            if source is None:  # nothing to download: the architecture itself is wrong
                raise OODBenchError(f"Cannot build open_clip model {self.model!r}: "
                                    f"{' '.join(str(exc).split())[:160]}") from None
            raise self._offline(exc) from None
        model.eval()
        self._model, self._model_preprocess = model, preprocess
        self._preprocess = with_interpolation(preprocess, self.interpolation)
        self._tokenizer = open_clip.get_tokenizer(self.model)
        self._device = device

    def _offline(self, exc: BaseException) -> OODBenchError:
        text = " ".join(str(exc).split())[:160]
        if isinstance(exc, ValueError) and "pretrained" in text.lower():
            return OODBenchError(f"open_clip has no pretrained tag {self.pretrained!r} for "
                                 f"{self.model!r}; see open_clip.list_pretrained().")
        hint = "" if os.environ.get("HF_HUB_OFFLINE") else " (no hub access?)"
        return OfflineError(
            f"Cannot load open_clip weights {self.model}/{self.pretrained}{hint}: {text}. "
            f"Download them where the hub is reachable and pass --weights PATH, or fill the "
            f"Hugging Face cache and set HF_HUB_OFFLINE=1."
        )

    @property
    def _loaded(self) -> Any:
        if not hasattr(self, "_model"):
            raise OODBenchError("Backbone used before load(); call load(device) first.")
        return self._model

    @property
    def embed_dim(self) -> int:
        proj = getattr(self._loaded.visual, "output_dim", None)
        return int(proj) if proj else int(self._loaded.text_projection.shape[1])

    @property
    def logit_scale(self) -> float:
        return float(self._loaded.logit_scale.exp().item())

    def fingerprint(self) -> str:
        """Weights + the transform that runs (its repr names the interpolation)."""
        return self._fingerprint(getattr(self, "_preprocess", ""))

    def text_fingerprint(self) -> str:
        """As ``fingerprint()`` with the model's own transform: equal to it at
        interpolation=model, and the same for every interpolation."""
        return self._fingerprint(getattr(self, "_model_preprocess", ""))

    def _fingerprint(self, transform: Any) -> str:
        weights = ""
        if self.weights:
            stat = Path(self.weights).stat()
            weights = f"{Path(self.weights).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        return (f"openclip:{self.model}:{self.pretrained}:{weights}:"
                + content_key(repr(transform))[:16])

    def interpolation_used(self) -> str | None:
        _ = self._loaded
        return resize_interpolation(self._preprocess)

    def preprocess(self) -> Callable[[Image.Image], torch.Tensor]:
        _ = self._loaded
        return self._preprocess

    def tensor_preprocess(self) -> TensorPreprocess | None:
        _ = self._loaded
        return tensor_spec_from_transform(self._preprocess)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = self._loaded.encode_image(pixels.to(self.device))
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def encode_images_differentiable(self, images: torch.Tensor) -> torch.Tensor:
        size = self._loaded.visual.image_size
        size = size if isinstance(size, tuple | list) else (size, size)
        mode = resize_interpolation(self._preprocess) or "bicubic"
        x = torch.nn.functional.interpolate(images, size=tuple(size), mode=mode,
                                            align_corners=False, antialias=True)
        mean = torch.tensor(self._loaded.visual.image_mean or (0.48145466, 0.4578275, 0.40821073),
                            device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self._loaded.visual.image_std or (0.26862954, 0.26130258, 0.27577711),
                           device=x.device).view(1, 3, 1, 1)
        feats = self._loaded.encode_image((x - mean) / std)
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return encode_texts_halving(self._encode_text_batch, texts)

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self._tokenizer(texts).to(self.device)
        with torch.no_grad():
            feats = self._loaded.encode_text(tokens)
        return torch.nn.functional.normalize(feats.float(), dim=-1)


_RGB_STEPS = ("MaybeConvertMode", "_convert_to_rgb")  # open_clip's "make it RGB" steps
_TO_TENSOR_STEPS = ("ToTensor", "MaybeToTensor")


def tensor_spec_from_transform(transform: Any) -> TensorPreprocess | None:
    """Read a torchvision ``Compose`` of Resize, CenterCrop, to-RGB, ToTensor, Normalize.

    It is read from the transform object itself (not from open_clip's config), so the spec
    describes exactly what the CPU path runs; any other step (open_clip's ``longest`` resize
    with padding, random augmentation...) gives None and the GPU decode path falls back.
    """
    from torchvision import transforms as T

    size: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    interpolation = ""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    as_tensor = False
    steps = getattr(transform, "transforms", None)
    if not steps:
        return None
    for step in steps:
        # transform objects by class name, plain functions (older open_clip) by their name
        name = getattr(step, "__name__", None) or type(step).__name__
        if type(step) is T.Resize and size is None and not as_tensor and step.max_size is None:
            value = step.size
            size = (int(value) if isinstance(value, int)
                    else int(value[0]) if len(value) == 1 else (int(value[0]), int(value[1])))
            # PIL input (the CPU path) is always resized with antialiasing
            interpolation = getattr(step.interpolation, "value", str(step.interpolation))
        elif type(step) is T.CenterCrop and size is not None and crop is None and not as_tensor:
            crop = (int(step.size[0]), int(step.size[1]))
        elif name in _RGB_STEPS and getattr(step, "mode", "RGB") == "RGB":
            continue  # images reach the transform as RGB already
        elif name in _TO_TENSOR_STEPS and not as_tensor:
            as_tensor = True
        elif type(step) is T.Normalize and as_tensor and not mean:
            mean, std = tuple(map(float, step.mean)), tuple(map(float, step.std))
        else:
            return None
    if size is None or not as_tensor or len(mean) != 3 or len(std) != 3:
        return None
    try:
        return TensorPreprocess(
            size=size, interpolation=interpolation,  # type: ignore[arg-type]
            mean=mean, std=std,  # type: ignore[arg-type]
            resize_mode="shortest" if isinstance(size, int) else "squash", crop=crop,
            crop_offset="round")
    except ValueError:  # e.g. nearest interpolation, a padding crop: not expressed as a spec
        return None

"""open_clip backbones: any model name + pretrained tag, or a local checkpoint.

Trap (METHODS.md §1): ``ViT-B-16`` with tag ``openai`` only warns that the weights expect
QuickGELU and then computes wrong embeddings, so the presets use the ``-quickgelu`` names.
"""

from __future__ import annotations

import dataclasses
import logging
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
    weights_sha256,
    with_interpolation,
)
from oodbench.backbones.weights_file import load_weights_file, no_random_init_warning
from oodbench.cache import content_key
from oodbench.errors import MissingDataError, OfflineError, OODBenchError
from oodbench.hub import offline_hint, prefer_offline_when_unreachable

_logger = logging.getLogger(__name__)
# the keys of an open_clip pretrained tag's config that a weights file is loaded with
_TAG_KEYS = ("mean", "std", "interpolation", "resize_mode", "quick_gelu")


@dataclasses.dataclass
class OpenCLIPBackbone(Backbone):
    """An open_clip model; ``pretrained`` is a tag (``openai``, ``laion2b_s34b_b88k``...).

    With ``weights`` (a local file: a state dict as .bin/.pt/.pth/.safetensors, a training
    checkpoint ``{"state_dict": ...}`` with or without ``module.`` prefixes, or the TorchScript
    file OpenAI's ``clip.load`` caches) the weights come from the file and ``pretrained`` names
    the tag they are a copy of: its preprocessing (mean, std, interpolation, resize mode) is
    merged as open_clip merges it when it downloads that tag itself (it does so only when
    ``pretrained`` is a tag), and QuickGELU is switched on when the tag was trained with it
    (open_clip itself only warns). ``pretrained=""`` with a file: the model config's own
    defaults. OpenAI-style weights (a TorchScript file, the tag ``openai``) on a model without
    QuickGELU get a one-line warning (METHODS.md §1).
    """

    name = "openclip"
    description = "Any open_clip model + pretrained tag or local checkpoint (--weights)."
    model: str = "ViT-B-16-quickgelu"
    pretrained: str = "openai"  # "" = random initialisation (timing and tests)
    weights: str = ""  # local checkpoint file; the weights instead of the tag's download
    interpolation: Interpolation = "model"  # resize filter; "model" = open_clip's (bicubic)
    force_quick_gelu: bool = False  # QuickGELU whatever the model config says (OpenAI weights)

    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        import open_clip

        self._jit_file = False
        if self.weights:
            model, preprocess = self._from_file(Path(self.weights).expanduser())
            model = model.to(device)
            self._sha256 = weights_sha256(self.weights)
        else:
            model, preprocess = self._from_tag(device)
        self._warn_quick_gelu()
        model.eval()
        self._model, self._model_preprocess = model, preprocess
        self._preprocess = with_interpolation(preprocess, self.interpolation)
        self._tokenizer = open_clip.get_tokenizer(self.model)
        self._device = device

    def _from_tag(self, device: torch.device) -> tuple[Any, Any]:
        import open_clip

        source = self.pretrained or None
        if source:  # a download: fail at once when the hub is unreachable, not after retries
            prefer_offline_when_unreachable()
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model, pretrained=source, device=device,
                force_quick_gelu=self.force_quick_gelu)
        except RuntimeError as exc:
            if "unknown model" in str(exc).lower() or "Model config" in str(exc):
                raise self._unknown_model() from None
            raise self._offline(exc) from None
        except (OSError, ValueError) as exc:
            if source is None:  # nothing to download: the architecture itself is wrong
                raise OODBenchError(f"Cannot build open_clip model {self.model!r}: "
                                    f"{' '.join(str(exc).split())[:160]}") from None
            raise self._offline(exc) from None
        return model, preprocess

    def _unknown_model(self) -> OODBenchError:
        return OODBenchError(f"open_clip has no model {self.model!r}; see "
                             f"open_clip.list_models().")

    def tag_config(self) -> dict[str, Any]:
        """The pretrained tag's configuration applied to a ``weights`` file ({} without a tag):
        open_clip's ``get_pretrained_cfg(model, tag)``, the keys that change the model's
        preprocessing or activation (mean, std, interpolation, resize_mode, quick_gelu)."""
        from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

        if not self.pretrained:
            return {}
        cfg = get_pretrained_cfg(self.model, self.pretrained)
        if not cfg:
            tags = ", ".join(list_pretrained_tags_by_model(self.model)) or "none"
            raise OODBenchError(
                f"open_clip has no pretrained tag {self.pretrained!r} for {self.model!r} "
                f"(tags: {tags}); with --weights, --backbone-param pretrained=TAG names the tag "
                f"the file is a copy of (its preprocessing is applied), pretrained= none.")
        return {k: cfg[k] for k in _TAG_KEYS if k in cfg}

    def _from_file(self, path: Path) -> tuple[Any, Any]:
        import open_clip

        if not path.exists():
            raise MissingDataError(f"Backbone checkpoint {self.weights} does not exist.")
        if path.is_dir():
            raise OODBenchError(self._folder_message(path))
        cfg = self.tag_config()
        quick_gelu = self.force_quick_gelu or bool(cfg.get("quick_gelu"))
        try:
            with no_random_init_warning():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.model, pretrained=None, device="cpu", force_quick_gelu=quick_gelu,
                    image_mean=cfg.get("mean"), image_std=cfg.get("std"),
                    image_interpolation=cfg.get("interpolation"),
                    image_resize_mode=cfg.get("resize_mode"))
        except RuntimeError as exc:
            if "unknown model" in str(exc).lower() or "Model config" in str(exc):
                raise self._unknown_model() from None
            raise OODBenchError(f"Cannot build open_clip model {self.model!r}: "
                                f"{' '.join(str(exc).split())[:160]}") from None
        self._jit_file = load_weights_file(model, path, self.model)
        return model, preprocess

    def _folder_message(self, path: Path) -> str:
        inside = sorted(f.name for f in path.iterdir()
                        if f.suffix in (".bin", ".pt", ".pth", ".safetensors"))
        hint = f" (it holds {', '.join(inside[:3])}: pass one of those files)" if inside else ""
        return (f"--weights {path} is a folder; the open_clip backbone takes one checkpoint "
                f"file (.bin, .pt, .pth, .safetensors, or OpenAI's TorchScript .pt){hint}. A "
                f"Hugging Face transformers model folder (config.json) belongs to --backbone "
                f"hf-clip --weights FOLDER.")

    def _warn_quick_gelu(self) -> None:
        """One line when OpenAI-style weights run without QuickGELU (METHODS.md §1)."""
        from open_clip import get_model_config, list_models

        openai_style = self._jit_file or self.pretrained == "openai"
        quick = self.force_quick_gelu or bool((get_model_config(self.model) or {})
                                              .get("quick_gelu"))
        if self.weights:
            quick = quick or bool(self.tag_config().get("quick_gelu"))
        if openai_style and not quick:
            what = "an OpenAI TorchScript file" if self._jit_file else "the tag 'openai'"
            named = f"{self.model}-quickgelu"
            fix = (f"model={named} or --backbone-param force_quick_gelu=true"
                   if named in list_models() else "force_quick_gelu=true")
            _logger.warning(
                f"open_clip model {self.model!r} runs without QuickGELU but its weights "
                f"({what}) were trained with it: the embeddings are wrong; use "
                f"--backbone-param {fix}.")

    def _offline(self, exc: BaseException) -> OODBenchError:
        text = " ".join(str(exc).split())[:160]
        if isinstance(exc, ValueError) and "pretrained" in text.lower():
            return OODBenchError(f"open_clip has no pretrained tag {self.pretrained!r} for "
                                 f"{self.model!r}; see open_clip.list_pretrained().")
        return OfflineError(
            f"Cannot load open_clip weights {self.model}/{self.pretrained}{offline_hint()}: "
            f"{text}. Download them where the hub is reachable and pass --weights PATH, or "
            f"fill the Hugging Face cache and set HF_HUB_OFFLINE=1."
        )

    def weights_identity(self) -> dict[str, Any] | None:
        """The ``weights`` file's path and sha256 (hashed once per path, size and mtime) and
        the tag it stands for; None without a file."""
        if not self.weights:
            return None
        return {"path": str(Path(self.weights).expanduser().resolve()),
                "sha256": self._weights_sha256(), "tag": self.pretrained or None}

    def _weights_sha256(self) -> str:
        """The ``weights`` file's sha256, fixed at load() (what the model holds)."""
        if getattr(self, "_sha256", None) is None:
            self._sha256 = weights_sha256(self.weights)
        return self._sha256

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
        # without --weights (and without force_quick_gelu) exactly as before: records and
        # feature caches keep their keys; a file is named by its content, not its path
        weights = f"sha256={self._weights_sha256()}" if self.weights else ""
        quick = ":force_quick_gelu" if self.force_quick_gelu else ""
        return (f"openclip:{self.model}:{self.pretrained}:{weights}{quick}:"
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

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """GL-MCM's patch features (:mod:`oodbench.backbones.tokens`); ViTs only."""
        from oodbench.backbones.tokens import openclip_patch_tokens

        with torch.no_grad():
            return openclip_patch_tokens(self._loaded.visual, pixels.to(self.device))

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


# -- weights files ---------------------------------------------------------------------------

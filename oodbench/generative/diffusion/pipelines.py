"""Stable Diffusion 1.x/2.x through Hugging Face ``diffusers`` (imported only when loading)."""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from PIL import Image

from oodbench.errors import MissingDataError, OfflineError, ParameterError
from oodbench.generative import HubModel
from oodbench.generative.diffusion.images import as_rgb, seed_generators
from oodbench.generative.diffusion.latent import DiffusionGenerator, LatentBatch, check_strength

DType = Literal["auto", "float16", "bfloat16", "float32"]
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# scheduler short names -> diffusers classes ("" keeps the model's own scheduler)
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def _resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """fp16 on CUDA, fp32 elsewhere, unless the parameter says otherwise."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if device.type == "cpu" and name == "float16":
        raise ParameterError("float16 diffusion on the CPU is not supported: use float32/bfloat16.")
    return _DTYPES[name]


def offline_error(model: str, exc: BaseException, param: str = "model") -> OfflineError:
    """The one-line error for a model that is neither local nor reachable on the hub."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    try:
        import huggingface_hub.constants as hub_constants

        offline = offline or bool(hub_constants.HF_HUB_OFFLINE)
    except ImportError:
        pass
    why = "HF_HUB_OFFLINE is set" if offline else " ".join(str(exc).split())[:120]
    return OfflineError(
        f"Cannot load diffusion model {model!r} ({why}): download it where the Hugging Face hub "
        f"is reachable (`hf download {model}` fills the cache this run reads) or pass a local "
        f"pipeline folder: --param <component>.{param}=/local/path."
    )


@dataclasses.dataclass
class DiffusersGenerator(HubModel, DiffusionGenerator):
    """Stable Diffusion 1.x/2.x (text-to-image or in-painting UNets) via ``diffusers``.

    ``text_to_image`` and ``inpaint`` call diffusers' own pipelines (text-to-image through the
    in-painting pipeline with a whole-image mask when the UNet has 9 input channels); the
    latent-level API runs the same loop on the pipeline's components. Registered as
    ``diffusers-txt2img`` = SD-1.5 with diffusers' usual 50 steps and guidance 7.5; plugins
    register presets of their own (another model, steps, strength, guidance).
    """

    model_marker: ClassVar[str] = "model_index.json"
    name: ClassVar[str] = "diffusers-txt2img"
    description: ClassVar[str] = (
        "Stable Diffusion 1.5 via diffusers (any hub id or local folder): text-to-image, "
        "in-painting and latent-level access"
    )
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    revision: str = ""
    variant: str = ""  # e.g. "fp16" to download the half-precision files
    dtype: DType = "auto"  # fp16 on CUDA, fp32 on the CPU
    decode_dtype: DType = "float32"  # dtype of the differentiable decode
    scheduler: str = ""  # "" = the model's own; else one of SCHEDULERS
    safety_checker: bool = False  # a false positive blacks out a synthetic sample

    _pipe: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _t2i: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _inpaint: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _vae_grad: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _dtype: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def load(self, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        dtype = _resolve_dtype(self.dtype, device)
        if self.scheduler and self.scheduler not in SCHEDULERS:
            raise ParameterError(
                f"diffusers scheduler {self.scheduler!r} is unknown; use one "
                f"of {', '.join(SCHEDULERS)} or '' (the model's own)."
            )
        local = Path(self.model).expanduser()
        if self.model.startswith(("/", ".", "~")) and not local.exists():
            raise MissingDataError(
                f"Diffusion model folder {self.model} does not exist: pass "
                "--param <component>.model=/local/path of a diffusers pipeline folder."
            )
        try:
            import diffusers
        except ImportError as exc:
            raise MissingDataError(
                "Diffusion backends need diffusers: run `pip install 'oodbench[diffusion]'`."
            ) from exc
        kwargs: dict[str, Any] = {"torch_dtype": dtype}
        if self.revision:
            kwargs["revision"] = self.revision
        if self.variant:
            kwargs["variant"] = self.variant
        if not self.safety_checker:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        try:
            with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype
                warnings.simplefilter("ignore", FutureWarning)
                pipe = diffusers.DiffusionPipeline.from_pretrained(
                    str(local) if local.exists() else self.model, **kwargs
                )
        except (OSError, ValueError) as exc:
            raise offline_error(self.model, exc) from None
        if not hasattr(pipe, "unet") or not hasattr(pipe, "vae"):
            raise ParameterError(
                f"{self.model!r} is a {type(pipe).__name__}; the diffusers "
                "backend needs a Stable Diffusion (UNet + VAE) pipeline."
            )
        if self.scheduler:
            cls = getattr(diffusers, SCHEDULERS[self.scheduler])
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
        self.use_pipeline(pipe.to(device), device)

    def use_pipeline(self, pipe: Any, device: torch.device | str | None = None) -> None:
        """Adopt an already built pipeline (benchmarks with random weights, notebooks)."""
        pipe.set_progress_bar_config(disable=True)
        for module in (pipe.unet, pipe.vae, getattr(pipe, "text_encoder", None)):
            if module is not None:
                module.requires_grad_(False).eval()
        self._pipe, self._dtype, self._vae_grad = pipe, pipe.unet.dtype, None
        self._device = torch.device(device) if device is not None else pipe.unet.device
        self._t2i = self._inpaint = None
        self._cache = {}

    @property
    def resolution(self) -> int:
        return self.size

    @property
    def guidance_latent_scale(self) -> float:
        """The VAE's ``scaling_factor`` (0.18215 for SD 1.x/2.x): ``decode`` divides by it."""
        self._require()
        return float(self._pipe.vae.config.scaling_factor)

    # -- diffusers' own pipelines --------------------------------------------------------------
    @property
    def inpainting_unet(self) -> bool:
        """True for a 9-channel (image + mask + masked image) in-painting UNet."""
        self._require()
        return int(self._pipe.unet.config.in_channels) == 9

    def _pipelines(self) -> tuple[Any, Any]:
        if self._inpaint is None:
            from diffusers import AutoPipelineForInpainting, AutoPipelineForText2Image

            pipe = self._pipe
            inpaint_pipe = _is_inpaint_pipe(pipe)
            self._inpaint = pipe if inpaint_pipe else AutoPipelineForInpainting.from_pipe(pipe)
            if self.inpainting_unet:
                self._t2i = None  # a whole-image mask on the in-painting pipeline instead
            else:
                self._t2i = AutoPipelineForText2Image.from_pipe(pipe) if inpaint_pipe else pipe
            for p in (self._inpaint, self._t2i):
                if p is not None:
                    p.set_progress_bar_config(disable=True)
        return self._t2i, self._inpaint

    def _common(self, prompts: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
        negative = [self.negative_prompt] * len(prompts) if self.negative_prompt else None
        return {
            "prompt": list(prompts),
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "height": self.size,
            "width": self.size,
            "generator": seed_generators(seeds),
            "negative_prompt": negative,
        }

    def text_to_image(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        self._require()
        self._check_lengths(prompts, seeds)
        t2i, _ = self._pipelines()
        if t2i is None:  # 9-channel in-painting UNet: a whole-image mask is text-to-image
            return super().text_to_image(prompts, seeds)
        out: list[Image.Image] = []
        step = max(1, self.batch_size)
        for i in range(0, len(prompts), step):
            out += t2i(**self._common(prompts[i : i + step], seeds[i : i + step])).images
        return out

    def inpaint(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        seeds: Sequence[int],
        masks: Sequence[Image.Image | None] | None = None,
        strength: float | None = None,
    ) -> list[Image.Image]:
        self._require()
        self._check_lengths(prompts, seeds)
        strength = self.strength if strength is None else float(strength)
        check_strength(strength)
        _, inpaint = self._pipelines()
        full = Image.new("L", (self.size, self.size), 255)
        out: list[Image.Image] = []
        step = max(1, self.batch_size)
        for i in range(0, len(prompts), step):
            part = [as_rgb(im) for im in images[i : i + step]]
            given = masks[i : i + step] if masks is not None else [None] * len(part)
            mask = [full if m is None else m for m in given]
            common = self._common(prompts[i : i + step], seeds[i : i + step])
            out += inpaint(image=part, mask_image=mask, strength=strength, **common).images
        return out

    # -- latent-level API ----------------------------------------------------------------------
    def _latent_shape(self) -> tuple[int, int, int]:
        self._require()
        factor = self._pipe.vae_scale_factor
        channels = int(self._pipe.vae.config.latent_channels)
        return (channels, self.size // factor, self.size // factor)

    def _new_scheduler(self) -> Any:
        self._require()
        return type(self._pipe.scheduler).from_config(self._pipe.scheduler.config)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self._require(images.device)
        vae = self._pipe.vae
        x = (images.to(self.device, self._dtype) * 2 - 1).contiguous()
        return vae.encode(x).latent_dist.mode() * vae.config.scaling_factor

    def decode(self, latents: torch.Tensor, requires_grad: bool | None = None) -> torch.Tensor:
        self._require(latents.device)
        vae = self._pipe.vae
        if self._wants_grad(latents, requires_grad):
            dtype = _DTYPES.get(self.decode_dtype, torch.float32)
            if dtype != self._dtype:
                if self._vae_grad is None:  # a frozen copy in the decode dtype, made once
                    self._vae_grad = copy.deepcopy(vae).to(dtype).requires_grad_(False)
                vae = self._vae_grad
            with torch.enable_grad():
                z = latents.to(self.device, dtype) / vae.config.scaling_factor
                return (vae.decode(z, return_dict=False)[0].float() + 1) / 2
        with torch.no_grad():
            z = latents.to(self.device, self._dtype) / vae.config.scaling_factor
            return (vae.decode(z, return_dict=False)[0].float() + 1) / 2

    @torch.no_grad()
    def _text(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        negative = [self.negative_prompt] * len(prompts) if self.negative_prompt else None
        cond, uncond = self._pipe.encode_prompt(list(prompts), self.device, 1, True, negative)
        return cond, uncond

    def _predict(
        self, z: torch.Tensor, t: torch.Tensor, batch: LatentBatch, guidance: float
    ) -> torch.Tensor:
        unet = self._pipe.unet
        cond, uncond = batch.text
        x = z
        if unet.config.in_channels == 9:
            x = torch.cat([z, batch.mask, batch.masked_latents], dim=1)
        if guidance > 1.0:
            out = unet(
                torch.cat([x, x]),
                t,
                encoder_hidden_states=torch.cat([uncond, cond]),
                return_dict=False,
            )[0]
            out_uncond, out_cond = out.chunk(2)
            return out_uncond + guidance * (out_cond - out_uncond)
        return unet(x, t, encoder_hidden_states=cond, return_dict=False)[0]

    def _after_step(
        self,
        z: torch.Tensor,
        batch: LatentBatch,
        noise: torch.Tensor,
        ts: torch.Tensor,
        i: int,
        scheduler: Any,
    ) -> torch.Tensor:
        if self._pipe.unet.config.in_channels == 9:
            return z
        # a text-to-image UNet in-paints by re-noising the known region at each step
        known = batch.latents
        if i < len(ts) - 1:
            known = scheduler.add_noise(known, noise, ts[i + 1 : i + 2].repeat(len(batch)))
        return (1 - batch.mask) * known + batch.mask * z

    def identity(self) -> str:
        local = Path(self.model).expanduser()
        stamp = ""
        if local.exists():
            files = sorted(local.rglob("*.safetensors")) + sorted(local.rglob("*.bin"))
            stamp = ",".join(f"{f.relative_to(local)}:{f.stat().st_size}" for f in files)
        return f"{self.name}:{self.params()}:{stamp}"


def _is_inpaint_pipe(pipe: Any) -> bool:
    return "Inpaint" in type(pipe).__name__

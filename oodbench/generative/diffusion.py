"""Diffusion backends: a shared latent-level API and the Hugging Face ``diffusers`` pipelines.

Two needs shape this module. MM-OOD renders concepts with text-to-image (Stable Diffusion 1.5);
SynOOD in-paints ID images and *steers the start noise* by a classifier's energy, so it needs
more than a pipeline call: encode an image, noise it at the strength's first timestep with a
given ε, run the denoising loop to ẑ₀, decode with gradients, and restart. Every backend
(``diffusers-*`` here, ``mini-diffusion`` in :mod:`oodbench_mini.diffusion`) implements
:class:`DiffusionGenerator`, so a guided synthesizer (``oodbench_synood.guidance``) runs
unchanged on both. Images are float RGB tensors in [0, 1] at both ends::

    z0 = gen.encode(images)                              # [N, 3, R, R], R = gen.resolution
    eps = torch.cat([gen.noise(1, seed) for seed in seeds])
    s = gen.guidance_latent_scale                        # SD: vae.config.scaling_factor
    for _ in range(3):
        z0_hat = gen.denoise(z0, eps, prompts, strength=0.6, steps=20, guidance=8.0)
        z = z0_hat.detach().requires_grad_(True)         # the loop itself runs without grad
        x = gen.decode(z)                                # differentiable (fp32) under autograd
        loss = (m - energy(classifier(x))) ** 2
        grad_u = s * torch.autograd.grad(loss.mean(), z)[0]   # ∂L/∂u, u = z0_hat / s
        eps = eps - r * grad_u                           # the "skip gradient"

``denoise`` starts from z_T = add_noise(z0, ε, t_start) (pure noise at strength 1.0) with a
whole-image mask; :meth:`DiffusionGenerator.prepare` builds a :class:`LatentBatch` for partial
masks. Models load lazily on first use, onto the device of the first tensor they are given (or
the CPU), unless ``load(device)`` was called. ``diffusers`` is imported only when loading.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image

from oodbench.errors import MissingDataError, OfflineError, ParameterError
from oodbench.generative import HubModel, ImageGenerator

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


@dataclasses.dataclass
class LatentBatch:
    """One batch prepared for the denoising loop: computed once, reused on every restart.

    ``latents`` is z0 = encode(image); ``masked_latents`` = encode(image with the mask blanked
    to grey), both in the backend's latent space (VAE latents x scaling factor, or pixels in
    [-1, 1] for pixel models); ``mask`` is 1 where the model repaints, at latent resolution;
    ``text`` holds the backend's conditional and unconditional text states.
    """

    latents: torch.Tensor
    mask: torch.Tensor
    masked_latents: torch.Tensor
    text: Any

    def __len__(self) -> int:
        return int(self.latents.shape[0])


def seed_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image: the same seed gives the same noise on every device."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def as_rgb(img: Image.Image) -> Image.Image:
    """RGB, with transparency composited on white (as the offline corpus was built)."""
    if img.mode in ("RGBA", "LA", "PA", "P"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return img.convert("RGB")


def images_to_tensor(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """PIL images (any mode) -> [N, 3, size, size] float in [0, 1] (bicubic resize)."""
    out = []
    for img in images:
        img = as_rgb(img)
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BICUBIC)
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1))
    return torch.stack(out) / 255.0


def tensor_to_images(images: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] in [0, 1] -> RGB PIL images."""
    x = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return [Image.fromarray(a) for a in x.permute(0, 2, 3, 1).numpy()]


def masks_to_tensor(masks: Sequence[Image.Image | None] | None, n: int, size: int) -> torch.Tensor:
    """Masks (white = repaint; None = the whole image) -> [N, 1, size, size] in {0, 1}."""
    if masks is None:
        masks = [None] * n
    if len(masks) != n:
        raise ParameterError(f"in-painting got {n} images but {len(masks)} masks.")
    out = []
    for m in masks:
        if m is None:
            out.append(torch.ones(1, size, size))
            continue
        m = m.convert("L").resize((size, size), Image.Resampling.BILINEAR)
        out.append((torch.from_numpy(np.asarray(m, dtype=np.float32).copy()) >= 127.5)[None])
    return torch.stack(out).float()


def _check_strength(strength: float) -> None:
    if not 0.0 < strength <= 1.0:
        raise ParameterError(f"diffusion strength must be in (0, 1], got {strength}.")


@dataclasses.dataclass
class DiffusionGenerator(ImageGenerator):
    """Text-to-image, in-painting and the latent-level API over a UNet + scheduler + codec.

    Subclasses load a model and implement ``encode`` / ``decode`` / ``_text`` / ``_predict`` /
    ``_new_scheduler`` / ``_latent_shape`` / ``resolution``; the denoising loop, strength and
    seeding live here once.
    """

    steps: int = 50
    guidance: float = 7.5
    strength: float = 1.0  # in-painting default: 1.0 repaints from pure noise
    size: int = 512  # output height = width in pixels
    batch_size: int = 4
    negative_prompt: str = ""

    _device: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    # -- what a backend provides ---------------------------------------------------------------
    @abstractmethod
    def load(self, device: torch.device | str = "cpu") -> None:
        """Load the model onto ``device`` (the run's device); raise errors naming the fix."""

    @property
    @abstractmethod
    def resolution(self) -> int:
        """Side of the square images ``encode`` expects (SD: ``size``; mini: 32)."""

    @abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] RGB in [0, 1] -> latents (deterministic: the posterior mean)."""

    @abstractmethod
    def decode(self, latents: torch.Tensor, requires_grad: bool | None = None) -> torch.Tensor:
        """Latents -> [N, 3, size, size] float32 RGB in [0, 1].

        Differentiable w.r.t. ``latents`` (float32, decoder weights frozen) when
        ``requires_grad`` is True, or when it is None and autograd is on and ``latents``
        requires grad; otherwise computed without a graph in the model's dtype.
        """

    @abstractmethod
    def _text(self, prompts: Sequence[str]) -> Any:
        """Conditional and unconditional text states for ``prompts`` (backend-specific)."""

    @abstractmethod
    def _predict(
        self, z: torch.Tensor, t: torch.Tensor, batch: LatentBatch, guidance: float
    ) -> torch.Tensor:
        """The guided model output at ``t`` for the scheduler-scaled ``z`` of ``batch``."""

    @abstractmethod
    def _new_scheduler(self) -> Any:
        """A fresh scheduler (multistep schedulers keep state: one per denoising run)."""

    @abstractmethod
    def _latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one image's latents."""

    @property
    def guidance_latent_scale(self) -> float:
        """s in ẑ0 = s·u, where u is what the decoder itself takes.

        A guided method steps the noise by the gradient w.r.t. u, as SynOOD's official code
        does (``latents / vae.config.scaling_factor``, then ``requires_grad`` on that): for
        SD's VAE (s = 0.18215) ∂L/∂ẑ0 would be 1/s = 5.49 times larger. ∂L/∂u = s·∂L/∂ẑ0.
        Pixel-space models (``mini-diffusion``) decode their latents as they are: s = 1.
        """
        return 1.0

    @property
    def loaded(self) -> bool:
        return self._device is not None

    @property
    def device(self) -> torch.device:
        return self._device if self._device is not None else torch.device("cpu")

    def _require(self, device: torch.device | str | None = None) -> None:
        """Load on first use: onto ``device`` (the first tensor's) when none was chosen."""
        if not self.loaded:
            self.load(device if device is not None else self.device)

    @staticmethod
    def _wants_grad(latents: torch.Tensor, requires_grad: bool | None) -> bool:
        if requires_grad is None:
            return torch.is_grad_enabled() and latents.requires_grad
        return requires_grad

    # -- pipelines -----------------------------------------------------------------------------
    def text_to_image(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        """One image per prompt, reproducible from its seed (batched by ``batch_size``)."""
        self._check_lengths(prompts, seeds)
        blank = [Image.new("RGB", (self.size, self.size), "white")] * len(prompts)
        return self.inpaint(blank, prompts, seeds, masks=None, strength=1.0)

    def inpaint(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        seeds: Sequence[int],
        masks: Sequence[Image.Image | None] | None = None,
        strength: float | None = None,
    ) -> list[Image.Image]:
        """Repaint the white part of each mask (None: the whole image) from ``strength``."""
        self._check_lengths(prompts, seeds)
        out: list[Image.Image] = []
        step = max(1, self.batch_size)
        for i in range(0, len(prompts), step):
            part = None if masks is None else masks[i : i + step]
            batch = self.prepare(images[i : i + step], prompts[i : i + step], part)
            noise = torch.cat([self.noise(1, s) for s in seeds[i : i + step]])
            z0 = self.denoise(batch, noise, strength=strength)
            out += self.to_images(self.decode(z0))
        return out

    @staticmethod
    def _check_lengths(prompts: Sequence[str], seeds: Sequence[int]) -> None:
        if len(prompts) != len(seeds):
            raise ParameterError(f"got {len(prompts)} prompts but {len(seeds)} seeds.")

    # -- the latent-level API ------------------------------------------------------------------
    @torch.no_grad()
    def prepare(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        masks: Sequence[Image.Image | None] | None = None,
    ) -> LatentBatch:
        """Encode images, masked images (mask: white = repaint, None = all) and prompts once."""
        self._require()
        if len(images) != len(prompts):
            raise ParameterError(f"got {len(images)} images but {len(prompts)} prompts.")
        size = self.resolution
        pixels = images_to_tensor(images, size).to(self.device)
        mask = masks_to_tensor(masks, len(images), size).to(self.device)
        latents = self.encode(pixels)
        # the blanked region is grey (0 in [-1, 1]), as diffusers' in-painting pipelines do
        masked = self.encode(pixels * (mask < 0.5) + 0.5 * (mask >= 0.5))
        small = torch.nn.functional.interpolate(mask, size=tuple(latents.shape[-2:]))  # nearest
        return LatentBatch(latents, small.to(latents.dtype), masked, self._text(prompts))

    def noise(self, n: int, seed: int) -> torch.Tensor:
        """[n, C, h, w] standard normal start noise from one CPU generator seeded by ``seed``."""
        return torch.randn((n, *self._latent_shape()), generator=seed_generators([seed])[0])

    def timesteps(self, strength: float | None = None, steps: int | None = None) -> torch.Tensor:
        """The timesteps the loop runs at this strength, as diffusers' img2img pipelines do.

        20 steps at strength 0.6 with SD-2-inpainting's PNDM scheduler: 601, 551, ..., 1.
        """
        return self._schedule(self._new_scheduler(), strength, steps)

    def _schedule(self, scheduler: Any, strength: float | None, steps: int | None) -> torch.Tensor:
        strength = self.strength if strength is None else float(strength)
        steps = self.steps if steps is None else int(steps)
        _check_strength(strength)
        scheduler.set_timesteps(steps, device=self.device)
        init = min(int(steps * strength), steps)
        start = max(steps - init, 0)
        ts = scheduler.timesteps[start * scheduler.order :]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start * scheduler.order)
        if len(ts) == 0:
            raise ParameterError(
                f"strength {strength} with {steps} steps leaves no denoising step; raise either."
            )
        return ts

    def add_noise(
        self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int
    ) -> torch.Tensor:
        """The forward process q(z_t | z_0) of this model's schedule (z_T of a restart)."""
        t = torch.as_tensor(t, device=latents.device).reshape(-1)
        t = t.expand(latents.shape[0]) if t.numel() == 1 else t
        scheduler = self._new_scheduler()
        scheduler.set_timesteps(self.steps, device=latents.device)  # sigma schedulers need it
        return scheduler.add_noise(latents, noise.to(latents), t)

    def whole_image_batch(self, latents: torch.Tensor, prompts: Sequence[str]) -> LatentBatch:
        """A :class:`LatentBatch` that repaints everything: what SynOOD's in-painting uses."""
        if len(prompts) != latents.shape[0]:
            raise ParameterError(f"got {latents.shape[0]} latents but {len(prompts)} prompts.")
        key = ("blank", tuple(latents.shape[1:]), latents.dtype, str(latents.device))
        if key not in self._cache:
            grey = torch.full((1, 3, self.resolution, self.resolution), 0.5, device=latents.device)
            with torch.no_grad():
                self._cache[key] = self.encode(grey).to(latents.dtype)
        n = latents.shape[0]
        mask = torch.ones((n, 1, *latents.shape[-2:]), device=latents.device, dtype=latents.dtype)
        text_key = ("text", tuple(prompts))
        if text_key not in self._cache:  # restarts reuse the same prompts: encode them once
            self._cache = {k: v for k, v in self._cache.items() if k[0] != "text"}
            with torch.no_grad():
                self._cache[text_key] = self._text(prompts)
        masked = self._cache[key].expand(n, -1, -1, -1)
        return LatentBatch(latents, mask, masked, self._cache[text_key])

    @torch.no_grad()
    def denoise(
        self,
        latents: torch.Tensor | LatentBatch,
        noise: torch.Tensor,
        prompts: Sequence[str] | None = None,
        strength: float | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """Start noise ε in, the final denoised latents ẑ0 out (no grad; restart-safe).

        ``latents``: z0 = encode(images) with ``prompts`` (whole-image mask), or a
        :class:`LatentBatch` from :meth:`prepare`. z_T = add_noise(z0, ε, t_start) (pure noise
        at strength 1.0), then the scheduler's loop with classifier-free guidance. Repeated
        calls with the same inputs give the same ẑ0: the scheduler is fresh each time.
        """
        if isinstance(latents, LatentBatch):
            batch = latents
        else:
            self._require(latents.device)
            if prompts is None:
                raise ParameterError("denoise(latents, noise, prompts): prompts are needed.")
            batch = self.whole_image_batch(latents, prompts)
        strength = self.strength if strength is None else float(strength)
        guidance = self.guidance if guidance is None else float(guidance)
        scheduler = self._new_scheduler()
        ts = self._schedule(scheduler, strength, steps)
        noise = noise.to(batch.latents)
        if strength >= 1.0:
            z = noise * scheduler.init_noise_sigma
        else:
            z = scheduler.add_noise(batch.latents, noise, ts[:1].repeat(len(batch)))
        for i, t in enumerate(ts):
            pred = self._predict(scheduler.scale_model_input(z, t), t, batch, guidance)
            z = scheduler.step(pred, t, z, return_dict=False)[0]
            z = self._after_step(z, batch, noise, ts, i, scheduler)
        return z

    def _after_step(
        self,
        z: torch.Tensor,
        batch: LatentBatch,
        noise: torch.Tensor,
        ts: torch.Tensor,
        i: int,
        scheduler: Any,
    ) -> torch.Tensor:
        """Hook after each step (a 4-channel UNet blends the known region back in here)."""
        return z

    def to_images(self, images: torch.Tensor) -> list[Image.Image]:
        """Decoded [N, 3, H, W] in [0, 1] -> PIL images at ``size``."""
        out = tensor_to_images(images)
        if out and out[0].size != (self.size, self.size):
            out = [im.resize((self.size, self.size), Image.Resampling.BICUBIC) for im in out]
        return out


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
    latent-level API runs the same loop on the pipeline's components. Presets:
    ``diffusers-txt2img`` = SD-1.5 (MM-OOD's renders: 50 steps, guidance 7.5) and
    ``diffusers-inpaint`` = SD-2-inpainting with SynOOD's 20 steps, strength 0.6, guidance 8.
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
        _check_strength(strength)
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

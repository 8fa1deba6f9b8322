"""The latent-level diffusion API every backend implements: encode, noise, denoise, decode.

:class:`DiffusionGenerator` runs the denoising loop (strength, seeding, classifier-free guidance)
once for all backends; a backend supplies the model pieces (codec, text states, the model's
prediction, a scheduler).
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from oodbench.errors import ParameterError
from oodbench.generative import ImageGenerator
from oodbench.generative.diffusion.images import (
    images_to_tensor,
    masks_to_tensor,
    seed_generators,
    tensor_to_images,
)


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


def check_strength(strength: float) -> None:
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

        A guided method steps the noise by the gradient w.r.t. u, as guided-synthesis code on
        SD commonly does (``latents / vae.config.scaling_factor``, then ``requires_grad`` on
        that): for SD's VAE (s = 0.18215) ∂L/∂ẑ0 would be 1/s = 5.49 times larger.
        ∂L/∂u = s·∂L/∂ẑ0.
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
        check_strength(strength)
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
        """A :class:`LatentBatch` that repaints everything (whole-image in-painting)."""
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

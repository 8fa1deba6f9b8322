"""Diffusion backends: a shared latent-level API and the Hugging Face ``diffusers`` pipelines.

Text-to-image and in-painting are one call each. A synthesizer that steers generation needs
more than a pipeline call: encode an image, noise it at the strength's first timestep with a
given ε, run the denoising loop to ẑ₀, decode with gradients, and restart. Every backend
(``diffusers-*`` here, ``mini-diffusion`` in :mod:`oodbench_mini.diffusion`) implements
:class:`DiffusionGenerator` (:mod:`.latent`), so such a synthesizer runs unchanged on all of
them. Images are float RGB tensors in [0, 1] at both ends; a loop that steps the start noise
by the gradient of some objective on a classifier's output reads::

    z0 = gen.encode(images)                              # [N, 3, R, R], R = gen.resolution
    eps = torch.cat([gen.noise(1, seed) for seed in seeds])
    s = gen.guidance_latent_scale                        # SD: vae.config.scaling_factor
    for _ in range(3):
        z0_hat = gen.denoise(z0, eps, prompts, strength=0.6, steps=20, guidance=8.0)
        z = z0_hat.detach().requires_grad_(True)         # the loop itself runs without grad
        x = gen.decode(z)                                # differentiable (fp32) under autograd
        loss = objective(classifier(x))
        grad_u = s * torch.autograd.grad(loss.mean(), z)[0]   # ∂L/∂u, u = z0_hat / s
        eps = eps - r * grad_u                           # restart from the moved noise

``denoise`` starts from z_T = add_noise(z0, ε, t_start) (pure noise at strength 1.0) with a
whole-image mask; :meth:`DiffusionGenerator.prepare` builds a :class:`LatentBatch` for partial
masks. Models load lazily on first use, onto the device of the first tensor they are given (or
the CPU), unless ``load(device)`` was called. ``diffusers`` is imported only when loading
(:mod:`.pipelines`); :mod:`.images` converts between PIL images, masks and tensors.
"""

from oodbench.generative.diffusion.images import (
    as_rgb,
    images_to_tensor,
    masks_to_tensor,
    seed_generators,
    tensor_to_images,
)
from oodbench.generative.diffusion.latent import DiffusionGenerator, LatentBatch, check_strength
from oodbench.generative.diffusion.pipelines import (
    SCHEDULERS,
    DiffusersGenerator,
    DType,
    offline_error,
)

__all__ = [
    "SCHEDULERS",
    "DType",
    "DiffusersGenerator",
    "DiffusionGenerator",
    "LatentBatch",
    "as_rgb",
    "check_strength",
    "images_to_tensor",
    "masks_to_tensor",
    "offline_error",
    "seed_generators",
    "tensor_to_images",
]

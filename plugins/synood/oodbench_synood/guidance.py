"""The energy guidance of SynOOD: push synthesized images towards the ID/OOD boundary.

s = mean(g) − logsumexp(g) on a frozen classifier's logits g (minus the centred energy);
loss L = (m − s)², m = −5. The "skip gradient": ∂L/∂u, where u is the decoder's input (through
the decoder and the classifier only, never the denoiser), is applied to the start noise,
ε ← ε − r·∂L/∂u, and the next iteration restarts from the *original* image with the new ε.

u is what the official code differentiates (generate_near_ood_sample.py: ``latents =
latents / pipe.vae.config.scaling_factor``, then ``latents.requires_grad_(True)`` and
``noises - latents.grad * args.lr``). The denoiser's latent is ẑ₀ = s·u with s the
in-painter's ``guidance_latent_scale``: SD's VAE scaling factor 0.18215, so ∂L/∂u = s·∂L/∂ẑ₀
and a step on ∂L/∂ẑ₀ would be 5.49 times the official one. A pixel model (``mini-diffusion``)
has no VAE: s = 1 and u = ẑ₀ (its offline preset r = 0.1 was chosen in that parameterisation).

The reference averages L over its batch of 2 images, so each image moves by r·∂[(m − s)²/2]/∂ẑ₀.
We compute exactly that per image, whatever ``batch_size`` is: the batch is only a throughput
setting here (with a plain batch mean, a batch of 32 would take 16x smaller steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import torch


def energy_guidance_score(logits: torch.Tensor) -> torch.Tensor:
    """s = mean_i g_i − logsumexp_i g_i per row; at most −log C, reached at uniform p."""
    return logits.mean(dim=1) - torch.logsumexp(logits, dim=1)


def effective_margin(margin: float, num_classes: int, relative: bool = True) -> float:
    """The margin m for a classifier with ``num_classes`` outputs.

    s ≤ −log C, so the paper's m = −5 with ImageNet's 1,000 classes (max s = −6.91) can never be
    reached and the loss always pushes towards a uniform posterior. With few classes (the
    offline suites: 4-10) m = −5 lies *below* the maximum and the same loss would push images
    towards confident ID instead. ``relative`` keeps the paper's distance to the maximum:
    m' = m + log 1000 − log C (equal to m for C = 1000).
    """
    if not relative:
        return margin
    return margin + math.log(1000) - math.log(num_classes)


REFERENCE_BATCH = 2  # the reference script's batch: its batch-mean loss halves each gradient


def guidance_loss(logits: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of (m − s)² over the batch (the reference's loss, for reporting)."""
    return ((margin - energy_guidance_score(logits)) ** 2).mean()


def per_image_loss(logits: torch.Tensor, margin: float) -> torch.Tensor:
    """Σ_i (m − s_i)² / 2: its gradient w.r.t. image i is the reference's for that image, and
    does not depend on how many images share the batch."""
    return ((margin - energy_guidance_score(logits)) ** 2).sum() / REFERENCE_BATCH


class Classifier(Protocol):
    """Frozen image classifier: [N, 3, H, W] RGB in [0, 1] -> [N, C] logits, differentiable."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class LatentInpainter(Protocol):
    """What guided synthesis needs from an in-painting diffusion backend."""

    @property
    def guidance_latent_scale(self) -> float:
        """s in ẑ₀ = s·u, u the decoder's input (SD: 0.18215; pixel models: 1)."""
        ...

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def denoise(self, image_latents: torch.Tensor, noise: torch.Tensor, prompts: Sequence[str],
                strength: float, steps: int, guidance: float) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


def noise_gradient(decode: Callable[[torch.Tensor], torch.Tensor], classifier: Classifier,
                   denoised: torch.Tensor, margin: float,
                   latent_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂L/∂u, decoded images), u = ẑ₀ / ``latent_scale`` the decoder's input; the gradient in
    fp32 through decoder + classifier only.

    ``decode`` takes ẑ₀ and divides by s itself (as the official code does before its decode),
    so the gradient is taken w.r.t. ẑ₀ and multiplied by s: ∂L/∂u = s·∂L/∂ẑ₀ (ẑ₀ = s·u). With
    s = 1 nothing is multiplied: pixel models get exactly the gradient w.r.t. ẑ₀.
    """
    latents = denoised.detach().float().requires_grad_(True)
    images = decode(latents).clamp(0, 1)
    loss = per_image_loss(classifier(images).float(), margin)
    (grad,) = torch.autograd.grad(loss, latents)
    if latent_scale != 1.0:
        grad = grad * latent_scale
    return grad, images.detach()


def guided_inpaint(inpainter: LatentInpainter, classifier: Classifier, images: torch.Tensor,
                   prompts: Sequence[str], noise: torch.Tensor, iterations: int, margin: float,
                   step: float, strength: float, steps: int,
                   guidance: float) -> tuple[torch.Tensor, list[float]]:
    """K iterations restarting from the original image with the updated noise.

    Returns the last iteration's decoded images ([0, 1]) and the mean guidance score per
    iteration (for the manifest). With ``step`` = 0 this is plain in-painting (the ablation):
    every iteration would restart from the same noise and give the same image, so one is run.
    """
    image_latents = inpainter.encode(images)
    scale = float(inpainter.guidance_latent_scale)
    eps = noise.clone()
    scores: list[float] = []
    decoded = images
    rounds = iterations if step != 0 else min(1, iterations)
    for k in range(rounds):
        with torch.no_grad():
            denoised = inpainter.denoise(image_latents, eps, prompts, strength, steps, guidance)
        if k == rounds - 1:  # the last decode is what is kept: no gradient needed after it
            with torch.no_grad():
                decoded = inpainter.decode(denoised).clamp(0, 1)
                scores.append(float(energy_guidance_score(classifier(decoded)).mean()))
            break
        with torch.enable_grad():
            grad, decoded = noise_gradient(inpainter.decode, classifier, denoised, margin,
                                           scale)
        with torch.no_grad():
            scores.append(float(energy_guidance_score(classifier(decoded)).mean()))
        eps = eps - step * grad.to(eps.dtype)
    return decoded, scores

"""The energy step on the diffusers path follows the official parameterisation.

The official generate_near_ood_sample.py differentiates the loss w.r.t. u = ẑ₀ / scaling_factor
(the VAE decoder's input) and steps the noise by ε ← ε − r·∂L/∂u. These tests drive the real
``DiffusersGenerator.decode`` and ``guidance_latent_scale`` over a stand-in VAE whose decoder is
a known linear map, with a classifier whose loss has a closed-form gradient, and compare the
updated noise with the hand-computed one.
"""

from __future__ import annotations

import math
import types

import pytest
import torch

from oodbench.generative.diffusion import DiffusersGenerator
from oodbench_mini.diffusion import MiniDiffusion
from oodbench_synood.guidance import REFERENCE_BATCH, energy_guidance_score, guided_inpaint

SCALE = 0.18215
# decoder: x[c] = Σ_j W[c, j]·u[j] in [-1, 1], per pixel (a 1x1 "VAE decoder")
W = [[0.3, -0.2, 0.1, 0.05], [0.1, 0.2, -0.3, 0.0], [-0.1, 0.05, 0.2, 0.25]]
K = 4.0  # classifier: logits (K·mean(image), 0)
MARGIN = -0.2  # any m gives a closed form
STEP = 10.0


class _LinearVAE(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(W))
        self.config = types.SimpleNamespace(scaling_factor=SCALE)

    def decode(self, u: torch.Tensor, return_dict: bool = False) -> tuple[torch.Tensor]:
        return (torch.einsum("cj,njhw->nchw", self.weight, u),)


class _Pipe:
    """Just what ``DiffusersGenerator.use_pipeline`` and ``decode`` touch."""

    def __init__(self) -> None:
        # the model's dtype and device, as diffusers' ModelMixin reports them
        self.unet = types.SimpleNamespace(dtype=torch.float32, device=torch.device("cpu"),
                                          requires_grad_=lambda _: self.unet, eval=lambda: None)
        self.vae = _LinearVAE()
        self.text_encoder = None

    def set_progress_bar_config(self, **_: object) -> None:
        pass


class _FixedDenoiser(DiffusersGenerator):
    """The real decode and latent scale; denoise returns a fixed ẑ₀ and records its noise."""

    def __init__(self, z0_hat: torch.Tensor) -> None:
        super().__init__()
        self.use_pipeline(_Pipe(), "cpu")
        self.z0_hat = z0_hat
        self.noises: list[torch.Tensor] = []

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(self.z0_hat)

    def denoise(self, latents, noise, prompts=None, strength=None, steps=None, guidance=None):
        self.noises.append(noise.clone())
        return self.z0_hat.clone()


def _classifier(images: torch.Tensor) -> torch.Tensor:
    a = K * images.mean(dim=(1, 2, 3))
    return torch.stack([a, torch.zeros_like(a)], dim=1)


def _hand_gradient_u(u: list[float], hw: int) -> list[float]:
    """∂L/∂u for one image whose latent is u[j] at every one of ``hw`` pixels.

    x = (W u + 1)/2 (all inside [0, 1], so the clamp passes the gradient); a = K·mean(x);
    s = a/2 − log(e^a + 1); L = (m − s)²/2 per image (the reference's batch-of-2 mean), so
    ∂L/∂a = −(m − s)·(1/2 − σ(a)) and ∂a/∂u[j, pixel] = K·Σ_c W[c][j] / (2·3·hw).
    """
    x = [(sum(W[c][j] * u[j] for j in range(4)) + 1) / 2 for c in range(3)]
    a = K * sum(x) / 3
    s = a / 2 - math.log(math.exp(a) + 1)
    dl_da = -(MARGIN - s) * (0.5 - 1 / (1 + math.exp(-a))) * 2 / REFERENCE_BATCH
    return [dl_da * K * sum(W[c][j] for c in range(3)) / (2 * 3 * hw) for j in range(4)]


def test_diffusers_generator_exposes_the_vae_scale():
    gen = _FixedDenoiser(torch.zeros(1, 4, 2, 2))
    assert gen.guidance_latent_scale == pytest.approx(SCALE)
    assert MiniDiffusion().guidance_latent_scale == 1.0  # a pixel model: no VAE, u = ẑ₀


def test_noise_steps_by_the_gradient_wrt_the_decoder_input():
    """One guided update on the diffusers path equals the hand-computed ε − r·∂L/∂u.

    With the gradient w.r.t. the scaled ẑ₀ the step would be 1/0.18215 = 5.49 times larger.
    """
    u = [[0.5, -0.3, 0.2, 0.1], [-0.4, 0.6, 0.0, 0.3]]
    h = w = 2
    u_tensor = torch.tensor(u)[:, :, None, None].expand(2, 4, h, w).contiguous()
    gen = _FixedDenoiser(u_tensor * SCALE)  # the denoiser's latent ẑ₀ = s·u
    eps0 = torch.randn(2, 4, h, w, generator=torch.Generator().manual_seed(0))
    images = torch.rand(2, 3, 8, 8)
    _, scores = guided_inpaint(gen, _classifier, images, ["a", "b"], eps0, 2, MARGIN, STEP,
                               0.6, 20, 8.0)
    assert len(gen.noises) == 2 and torch.equal(gen.noises[0], eps0)
    expected = eps0.clone()
    for n in range(2):
        grad = _hand_gradient_u(u[n], h * w)
        for j in range(4):
            expected[n, j] -= STEP * grad[j]
    assert torch.allclose(gen.noises[1], expected, rtol=1e-5, atol=1e-7)
    # the update is not the ẑ₀-gradient's, which is 1/s times larger
    moved = (gen.noises[1] - eps0).abs().max()
    assert moved > 0 and not torch.allclose(gen.noises[1], eps0 + (expected - eps0) / SCALE)
    # the decode the classifier saw was of u, not ẑ₀
    x = gen.decode(gen.z0_hat)
    assert float(energy_guidance_score(_classifier(x)).mean()) == pytest.approx(scores[0])

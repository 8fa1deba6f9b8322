"""``mini-diffusion``: a small text-conditioned pixel-space diffusion model for the offline world.

No text-to-image model is reachable from the machines this project is built on, so MM-OOD and
SynOOD get a stand-in trained here (:mod:`oodbench_mini.train_diffusion`): diffusers' own
``UNet2DConditionModel`` at 32x32 RGB (no VAE, no attention at full resolution: it costs too
much on a CPU), conditioned on the frozen all-MiniLM-L6-v2 text tower of the mini backbone
(token states through cross-attention, the pooled sentence embedding added to the timestep
embedding). One UNet does both modes, as SD's in-painting UNet does: its input is the noisy
image (3) + mask (1) + masked image (3) = 7 channels; a whole-image mask is text-to-image.

"Latents" are the model's pixels in [-1, 1]: ``encode`` maps RGB in [0, 1] there (resized to
32x32), ``decode`` upsamples to ``size`` and maps back to [0, 1] with a straight-through clamp,
so SynOOD's guided loop runs here as on SD. Its own parameterisation: there is no VAE, the
decoder's input is the denoised latent itself, so ``guidance_latent_scale`` is 1 (the base
class's) and the noise steps by ∂L/∂ẑ0; on SD it steps by ∂L/∂u, u = ẑ0 / 0.18215.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from PIL import Image

from oodbench.errors import MissingDataError
from oodbench.generative.diffusion import (
    DiffusionGenerator,
    LatentBatch,
    as_rgb,
    masks_to_tensor,
)
from oodbench_mini.model import EMBED_DIM, TEXT_PACKAGE, TextTower, file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parent / "diffusion_weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "mini_diffusion.safetensors"
RESOLUTION = 32
MAX_TOKENS = 32  # MiniLM tokens per prompt; the corpus captions are short
# How a sample is drawn from a model output, beyond the scheduler and the parameters: part of the
# identity, so images cached by an earlier sampler are not reused ("consistent-x0-clip": see
# MiniDiffusion._clip_x0; before it, diffusers' DDIM clip with a stale ε̂).
SAMPLER = "consistent-x0-clip"

# Sized from the CPU timing table in OFFLINE_ASSETS.md (32x32, 32/64/128 channels, attention
# only at 16x16 and 8x8: ~4.6 M parameters). norm_num_groups=8: a group per channel at the
# 32-channel level would normalise away each image's colour.
UNET_CONFIG: dict[str, Any] = {
    "sample_size": RESOLUTION,
    "in_channels": 7,  # noisy image 3 + mask 1 + masked image 3
    "out_channels": 3,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64, 128],
    "layers_per_block": 1,
    "attention_head_dim": 32,
    "norm_num_groups": 8,
    "cross_attention_dim": EMBED_DIM,
    "class_embed_type": "projection",  # the pooled sentence embedding joins the time embedding
    "projection_class_embeddings_input_dim": EMBED_DIM,
}
# cosine schedule and v-prediction: stable at high noise, good for few-step DDIM in pixel space
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "clip_sample": True,
    "clip_sample_range": 1.0,
    "timestep_spacing": "trailing",
}
_SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
}


def build_unet(config: dict[str, Any] | None = None) -> Any:
    """A randomly initialised mini UNet (diffusers is imported here, not at module import)."""
    try:
        from diffusers import UNet2DConditionModel
    except ImportError as exc:
        raise MissingDataError(
            "mini-diffusion needs diffusers: run `pip install 'oodbench[diffusion]'`."
        ) from exc
    return UNet2DConditionModel(**(config or UNET_CONFIG))


@dataclasses.dataclass
class TextStates:
    """MiniLM conditioning: token states [N, L, 384], their mask [N, L], pooled [N, 384]."""

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def cat(self, other: TextStates) -> TextStates:
        return TextStates(
            torch.cat([self.states, other.states]),
            torch.cat([self.mask, other.mask]),
            torch.cat([self.pooled, other.pooled]),
        )

    def index(self, idx: torch.Tensor | slice) -> TextStates:
        return TextStates(self.states[idx], self.mask[idx], self.pooled[idx])


@torch.no_grad()
def encode_text(tower: TextTower, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> TextStates:
    """Token states and the normalised mean-pooled embedding (as the mini backbone pools)."""
    hidden, ids_mask = tower.hidden_states(texts, max_tokens, pad_to_max=True)
    mask = ids_mask.to(hidden.dtype)
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
    return TextStates(hidden, mask, F.normalize(pooled, dim=-1))


def unet_input(x_t: torch.Tensor, mask: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The 7-channel input: noisy image, mask (1 = repaint), image with the mask blanked."""
    return torch.cat([x_t, mask, masked], dim=1)


def unet_forward(unet: Any, x: torch.Tensor, t: torch.Tensor, text: TextStates) -> torch.Tensor:
    """One UNet call on a 7-channel input with MiniLM conditioning."""
    return unet(
        x,
        t,
        encoder_hidden_states=text.states,
        encoder_attention_mask=text.mask,
        class_labels=text.pooled,
        return_dict=False,
    )[0]


def random_masks(n: int, size: int, gen: torch.Generator, full: float = 0.5) -> torch.Tensor:
    """Training masks [n, 1, size, size]: a share ``full`` whole-image (text-to-image); the rest
    boxes, their complements (out-painting) and half-image masks (in-painting)."""
    masks = torch.ones(n, 1, size, size)
    kind = torch.rand(n, generator=gen)
    lo = torch.randint(0, size // 2, (n, 2), generator=gen)
    span = torch.randint(size // 4, size - size // 8, (n, 2), generator=gen)
    side = torch.randint(0, 4, (n,), generator=gen)
    grid = torch.arange(size)
    for i in range(n):
        if kind[i] < full:
            continue
        y0, x0 = int(lo[i, 0]), int(lo[i, 1])
        y1, x1 = min(size, y0 + int(span[i, 0])), min(size, x0 + int(span[i, 1]))
        box = (
            (grid[:, None] >= y0)
            & (grid[:, None] < y1)
            & (grid[None, :] >= x0)
            & (grid[None, :] < x1)
        ).float()
        rest = 1 - full
        if kind[i] < full + 0.6 * rest:
            masks[i, 0] = box
        elif kind[i] < full + 0.8 * rest:
            masks[i, 0] = 1 - box
        else:
            half = size // 2
            m = torch.zeros(size, size)
            s = int(side[i])
            if s == 0:
                m[:half] = 1
            elif s == 1:
                m[half:] = 1
            elif s == 2:
                m[:, :half] = 1
            else:
                m[:, half:] = 1
            masks[i, 0] = m
    return masks


def save_weights(unet: Any, path: Path, config: dict[str, Any], half: bool = False) -> None:
    """Safetensors with the full model config in the metadata (a file is self-describing)."""
    from safetensors.torch import save_file

    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in unet.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"config": json.dumps(config, sort_keys=True)})


def read_config(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    if "config" in meta:
        return json.loads(meta["config"])
    side = path.with_name("config.json")
    if side.exists():
        return json.loads(side.read_text())
    return {"unet": UNET_CONFIG, "scheduler": SCHEDULER_CONFIG}


def load_weights(path: Path) -> tuple[Any, dict[str, Any]]:
    """(float32 UNet in eval mode, config) from a mini-diffusion safetensors file."""
    from safetensors.torch import load_file

    if not path.exists():
        raise MissingDataError(
            f"mini-diffusion weights not found at {path}: pass --param <component>.weights="
            "/path/mini_diffusion.safetensors or train them with "
            "`python plugins/mini/tools/train_diffusion.py` in the oodbench checkout."
        )
    config = read_config(path)
    unet = build_unet(config["unet"])
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    unet.load_state_dict(state)
    return unet.eval().requires_grad_(False), config


@dataclasses.dataclass
class MiniDiffusion(DiffusionGenerator):
    """Offline stand-in for SD: text-to-image and in-painting at 32x32, upsampled to ``size``."""

    name: ClassVar[str] = "mini-diffusion"
    description: ClassVar[str] = (
        "offline 32x32 pixel-space diffusion (diffusers UNet, MiniLM text), trained here; "
        "text-to-image, in-painting and latent-level access"
    )
    weights: str = ""  # "" = the committed diffusion_weights/
    steps: int = 50
    guidance: float = 3.0
    size: int = 64  # the mini backbone's input size
    batch_size: int = 32
    scheduler: Literal["ddim", "ddpm", "dpm++"] = "ddim"
    keep_unmasked: bool = True  # paste the source's unmasked pixels into in-painted outputs

    _unet: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _tower: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _config: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)
    _uncond: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _sha: str = dataclasses.field(default="", init=False, repr=False, compare=False)

    @property
    def weights_path(self) -> Path:
        return Path(self.weights).expanduser() if self.weights else DEFAULT_WEIGHTS

    def load(self, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        unet, config = load_weights(self.weights_path)
        self._unet = unet.to(device)
        self._config = config
        self._tower = TextTower(device)
        self._uncond = None
        self._cache = {}
        self._device = device

    @property
    def config(self) -> dict[str, Any]:
        """The model config (read from the weights' metadata without loading the model)."""
        if not self._config:
            if not self.weights_path.exists():
                load_weights(self.weights_path)  # raises the MissingDataError
            self._config = read_config(self.weights_path)
        return self._config

    @property
    def resolution(self) -> int:
        return int(self.config["unet"].get("sample_size", RESOLUTION))

    def _latent_shape(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)

    def _new_scheduler(self) -> Any:
        import diffusers

        cls = getattr(diffusers, _SCHEDULERS[self.scheduler])
        return cls.from_config(self.config["scheduler"])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] at any size -> the model's pixels in [-1, 1] at 32x32 (antialiased)."""
        self._require(images.device)
        r = self.resolution
        x = images.to(self.device, torch.float32) * 2 - 1
        if x.shape[-2:] != (r, r):
            x = F.interpolate(x, size=(r, r), mode="bilinear", antialias=True, align_corners=False)
        return x

    def decode(self, latents: torch.Tensor, requires_grad: bool | None = None) -> torch.Tensor:
        """Upsample to ``size`` (bicubic), map to [0, 1], clamp with a straight-through
        gradient (a clamped pixel still passes its gradient on to the latent)."""
        with torch.set_grad_enabled(self._wants_grad(latents, requires_grad)):
            x = latents.float()
            if x.shape[-1] != self.size:
                x = F.interpolate(
                    x, size=(self.size, self.size), mode="bicubic", align_corners=False
                )
            x = (x + 1) / 2
            return x + (x.clamp(0.0, 1.0) - x).detach()

    def _text(self, prompts: Sequence[str]) -> tuple[TextStates, TextStates]:
        self._require()
        max_tokens = int(self.config.get("text", {}).get("max_tokens", MAX_TOKENS))
        cond = encode_text(self._tower, prompts, max_tokens)
        if self._uncond is None or self._uncond.states.shape[1] != max_tokens:
            self._uncond = encode_text(self._tower, [self.negative_prompt], max_tokens)
        n = len(prompts)
        u = self._uncond
        uncond = TextStates(
            u.states.expand(n, -1, -1), u.mask.expand(n, -1), u.pooled.expand(n, -1)
        )
        return cond, uncond

    def _predict(
        self, z: torch.Tensor, t: torch.Tensor, batch: LatentBatch, guidance: float
    ) -> torch.Tensor:
        cond, uncond = batch.text
        x = unet_input(z, batch.mask, batch.masked_latents)
        if guidance > 1.0:
            out = unet_forward(self._unet, torch.cat([x, x]), t, uncond.cat(cond))
            out_uncond, out_cond = out.chunk(2)
            out = out_uncond + guidance * (out_cond - out_uncond)
        else:
            out = unet_forward(self._unet, x, t, cond)
        return self._clip_x0(out, z, t)

    def _clip_x0(self, out: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The model output whose predicted clean image x̂0 is clipped to [-r, r].

        diffusers' DDIM clips x̂0 but keeps the ε̂ of the unclipped one. Under guidance x̂0
        overshoots (a black background to < -1), and that stale ε̂ then pushes the next sample
        the other way: Fashion-MNIST prompts (light on black) came out dark on white. So x̂0 is
        clipped here and the output re-derived from it (as guided-diffusion's DDIM re-derives
        ε̂); the scheduler's own clip is then a no-op, and every scheduler gets the same clip.
        """
        sched = self.config["scheduler"]
        if not sched.get("clip_sample", False):
            return out
        key = ("alphas", str(z.device))
        if key not in self._cache:
            self._cache[key] = self._new_scheduler().alphas_cumprod.to(z.device, torch.float64)
        a = self._cache[key][torch.as_tensor(t, device=z.device).long()].to(z.dtype)
        a = a.reshape(-1, *[1] * (z.dim() - 1)) if a.dim() else a  # per-sample timesteps
        sa, sb = a.sqrt(), (1 - a).sqrt()
        kind = sched.get("prediction_type", "epsilon")
        if kind == "v_prediction":
            x0 = sa * z - sb * out
        elif kind == "epsilon":
            x0 = (z - sb * out) / sa
        else:  # "sample"
            x0 = out
        limit = float(sched.get("clip_sample_range", 1.0))
        excess = x0 - x0.clamp(-limit, limit)  # zero wherever x̂0 is in range: output unchanged
        if kind == "v_prediction":
            return out + excess / sb
        if kind == "epsilon":
            return out + sa * excess / sb
        return out - excess

    def inpaint(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        seeds: Sequence[int],
        masks: Sequence[Image.Image | None] | None = None,
        strength: float | None = None,
    ) -> list[Image.Image]:
        out = super().inpaint(images, prompts, seeds, masks, strength)
        if not self.keep_unmasked or masks is None:
            return out
        pasted = []
        for img, src, m in zip(out, images, masks, strict=True):
            if m is None:
                pasted.append(img)
                continue
            repaint = masks_to_tensor([m], 1, self.size)[0, 0].numpy().astype("uint8") * 255
            source = as_rgb(src).resize((self.size, self.size), Image.Resampling.BICUBIC)
            pasted.append(Image.composite(img, source, Image.fromarray(repaint, "L")))
        return pasted

    def identity(self) -> str:
        if not self._sha:
            if not self.weights_path.exists():
                load_weights(self.weights_path)  # raises the MissingDataError
            self._sha = file_sha256(self.weights_path)
        return (
            f"{self.name}:{self.params()}:sha256={self._sha}:text={TEXT_PACKAGE}:sampler={SAMPLER}"
        )

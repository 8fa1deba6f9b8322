"""Train ``mini-diffusion`` on the offline catalogue's train split: on the CPU, resumably.

A CPU step of the 4.6 M-parameter UNet at batch 32 takes seconds, so a useful model needs hours
spread over several sessions. Every step draws its data, masks, noise and timesteps from a
generator seeded by (seed, step), the learning rate is a function of the step, and checkpoints
(weights, EMA weights, optimizer state, log) are written atomically every N steps: a resumed
run continues exactly as an uninterrupted one would. The command line, with its recipes (warm
start from the committed weights, a packed corpus for a GPU machine), is
``plugins/mini/tools/train_diffusion.py``.

Masks: half whole-image (text-to-image), half boxes / complements / half-images (in-painting).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench.errors import OODBenchError
from oodbench.paths import cache_dir
from oodbench_mini.checkpoints import latest_checkpoint, load_into, save_checkpoint
from oodbench_mini.diffusion import (
    MAX_TOKENS,
    RESOLUTION,
    SCHEDULER_CONFIG,
    UNET_CONFIG,
    build_unet,
    encode_text,
    random_masks,
    unet_forward,
    unet_input,
)
from oodbench_mini.diffusion_corpus import Corpus
from oodbench_mini.model import TEXT_PACKAGE, TextTower, file_sha256

FORMAT = "mini-diffusion/1"


@dataclasses.dataclass
class TrainConfig:
    """Everything that determines the trained weights (checked again on resume)."""

    seed: int = 0
    batch_size: int = 32
    lr: float = 4e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    cfg_dropout: float = 0.1  # share of empty texts (classifier-free guidance)
    full_mask: float = 0.5  # share of whole-image masks (text-to-image mode)
    caption_share: float = 0.35  # else template(concept) / template(category), half each
    min_snr_gamma: float = 5.0
    max_tokens: int = MAX_TOKENS
    unet: dict = dataclasses.field(default_factory=lambda: dict(UNET_CONFIG))
    scheduler: dict = dataclasses.field(default_factory=lambda: dict(SCHEDULER_CONFIG))

    def model_config(self) -> dict[str, Any]:
        """What a weights file carries: enough to rebuild and run the model."""
        return {
            "format": FORMAT,
            "unet": self.unet,
            "scheduler": self.scheduler,
            "text": {
                "package": TEXT_PACKAGE,
                "max_tokens": self.max_tokens,
                "conditioning": "token states (cross-attention) + pooled (class emb)",
            },
        }


def default_resume_dir() -> Path:
    return cache_dir() / "mini-diffusion" / "train"


def hardware(device: torch.device | None = None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device is not None and device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return (
        f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, no GPU"
    )


# -- training ------------------------------------------------------------------------------------
def _step_rng(seed: int, step: int) -> tuple[torch.Generator, random.Random]:
    key = seed * 1_000_003 + step
    return torch.Generator().manual_seed(key), random.Random(key)


def _initial_state(latest: Path | None, init_weights: Path | None,
                   cfg: TrainConfig) -> dict[str, Any]:
    """The newest checkpoint's state (its settings must match), a warm start, or step 0."""
    if latest is not None:
        state = json.loads((latest / "state.json").read_text())
        saved = state["config"]
        wanted = json.loads(json.dumps(dataclasses.asdict(cfg)))
        if saved != wanted:
            diff = sorted(k for k in wanted if saved.get(k) != wanted[k])
            raise OODBenchError(
                f"Checkpoint {latest} was trained with other settings ({', '.join(diff)}): "
                "pass the same settings or a new --resume-dir."
            )
        return state
    if init_weights is not None:
        return warm_start_state(Path(init_weights), cfg)
    return {
        "step": 0,
        "train_seconds": 0.0,
        "config": dataclasses.asdict(cfg),
        "log": [],
        "sessions": [],
    }


def _models(cfg: TrainConfig, dev: torch.device, latest: Path | None, init_weights: Path | None,
            log: Callable[[str], None], step: int) -> tuple[Any, Any, torch.optim.Optimizer]:
    """UNet, its EMA copy and AdamW: seeded fresh, then loaded from a checkpoint or weights."""
    torch.manual_seed(cfg.seed)  # the initial weights
    unet = build_unet(cfg.unet)
    ema = build_unet(cfg.unet).requires_grad_(False)
    ema.load_state_dict(unet.state_dict())
    unet.to(dev)  # before the optimizer loads its state: it follows the parameters' device
    ema.to(dev)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if latest is not None:
        load_into(unet, latest / "unet.safetensors")
        load_into(ema, latest / "ema.safetensors")
        opt.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
        log(f"resumed from {latest} at step {step}")
    elif init_weights is not None:
        load_into(unet, Path(init_weights))
        load_into(ema, Path(init_weights))
        log(f"warm start from {init_weights} at step {step} (fresh optimizer)")
    return unet, ema, opt


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[dict[str, Any]]:
    """SIGTERM / SIGINT set ``stop["signal"]`` (the loop checkpoints and ends) while inside."""
    stop: dict[str, Any] = {"signal": None}

    def _stop(signum: int, _frame: Any) -> None:
        stop["signal"] = signum

    handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            handlers[sig] = signal.signal(sig, _stop)
    try:
        yield stop
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class _Objective:
    """One training step's loss: noise, timesteps and masks drawn from the step's generators."""

    cfg: TrainConfig
    corpus: Corpus
    scheduler: Any
    tower: TextTower
    dev: torch.device

    def __post_init__(self) -> None:
        self.alphas = self.scheduler.alphas_cumprod.to(self.dev)
        self.v_pred = self.scheduler.config.prediction_type == "v_prediction"

    def loss(self, unet: Any, step: int) -> torch.Tensor:
        cfg, dev, scheduler = self.cfg, self.dev, self.scheduler
        gen, rnd = _step_rng(cfg.seed, step)
        x0, texts = self.corpus.batch(cfg.batch_size, gen, rnd, cfg)
        masks = random_masks(cfg.batch_size, x0.shape[-1], gen, cfg.full_mask)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(
            0, scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=gen
        )
        x0, masks, noise, t = x0.to(dev), masks.to(dev), noise.to(dev), t.to(dev)
        x_t = scheduler.add_noise(x0, noise, t)
        target = scheduler.get_velocity(x0, noise, t) if self.v_pred else noise
        text = encode_text(self.tower, texts, cfg.max_tokens)
        pred = unet_forward(unet, unet_input(x_t, masks, x0 * (1 - masks)), t, text)
        snr = self.alphas[t] / (1 - self.alphas[t])
        weight = snr.clamp(max=cfg.min_snr_gamma) / (snr + 1 if self.v_pred else snr)
        return (weight * (pred.float() - target).pow(2).mean(dim=(1, 2, 3))).mean()


def _update(unet: Any, ema: Any, opt: torch.optim.Optimizer, loss: torch.Tensor,
            cfg: TrainConfig, step: int, warmup_from: int) -> None:
    """One AdamW step (learning rate warmed up from ``warmup_from``), then the EMA update."""
    since = step - warmup_from  # a warm start re-warms: a fresh Adam at full rate would jolt
    for group in opt.param_groups:
        group["lr"] = cfg.lr * min(1.0, (since + 1) / max(1, cfg.warmup))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
    opt.step()
    decay = min(cfg.ema_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), unet.parameters(), strict=True):
            p_ema.lerp_(p, 1 - decay)


class _Session:
    """This call's bookkeeping: the session record, training time, the loss log, checkpoints."""

    def __init__(self, state: dict[str, Any], dev: torch.device, resume_dir: Path,
                 log: Callable[[str], None], started: float) -> None:
        self.state, self.resume_dir, self.log = state, resume_dir, log
        self.started = self.last = started  # training time counts from the call's start
        self.window_start = time.time()
        self.saved_step = state["step"]
        self.window: list[float] = []
        self.record = {
            "from_step": state["step"],
            "hardware": hardware(dev),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        state["sessions"].append(self.record)

    def checkpoint(self, unet: Any, ema: Any, opt: torch.optim.Optimizer,
                   cfg: TrainConfig) -> Path:
        now, state = time.time(), self.state
        state["train_seconds"] = round(state["train_seconds"] + now - self.last, 1)
        self.last, self.saved_step = now, state["step"]
        self.record.update(to_step=state["step"], seconds=round(now - self.started, 1))
        return save_checkpoint(self.resume_dir, unet, ema, opt, state, cfg.model_config())

    def log_window(self) -> None:
        """Append the mean loss since the last entry to the state's log, and print it."""
        state = self.state
        per_step = (time.time() - self.window_start) / len(self.window)
        entry = {
            "step": state["step"],
            "loss": round(float(np.mean(self.window)), 5),
            "s_per_step": round(per_step, 3),
            "minutes": round((state["train_seconds"] + time.time() - self.last) / 60, 2),
        }
        state["log"].append(entry)
        self.log(f"step {entry['step']} loss {entry['loss']:.4f} "
                 f"{per_step:.2f} s/step total {entry['minutes']:.1f} min")
        self.window, self.window_start = [], time.time()


def train(
    resume_dir: Path | None = None,
    max_steps: int = 100_000,
    max_minutes: float = 30.0,
    checkpoint_every: int = 100,
    config: TrainConfig | None = None,
    data_dir: Path | None = None,
    log: Callable[[str], None] = print,
    log_every: int = 25,
    on_step: Callable[[int, float], None] | None = None,
    text_tower: TextTower | None = None,
    device: str = "cpu",
    packed_corpus: Path | None = None,
    init_weights: Path | None = None,
) -> dict:
    """Train until ``max_steps`` (total) or ``max_minutes`` (this call); return the state.

    Resumes from the newest checkpoint in ``resume_dir``; a checkpoint is written every
    ``checkpoint_every`` steps, at the end, and on SIGTERM/SIGINT. On ``device="cuda"`` the
    batches are still drawn on the CPU from the same seeded generators, then moved.
    With no checkpoint and ``init_weights`` (exported weights), training continues from those
    (see :func:`warm_start_state`).
    """
    from diffusers import DDPMScheduler

    resume_dir = Path(resume_dir) if resume_dir is not None else default_resume_dir()
    cfg = config or TrainConfig()
    started = time.time()
    latest = latest_checkpoint(resume_dir)
    state = _initial_state(latest, init_weights, cfg)
    dev = torch.device(device)
    unet, ema, opt = _models(cfg, dev, latest, init_weights, log, state["step"])
    corpus = Corpus(data_dir, int(cfg.unet.get("sample_size", RESOLUTION)), packed_corpus)
    objective = _Objective(cfg, corpus, DDPMScheduler.from_config(cfg.scheduler),
                           text_tower or TextTower(dev), dev)
    session = _Session(state, dev, resume_dir, log, started)
    log(
        f"training mini-diffusion: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M "
        f"params, {len(corpus)} train images, batch {cfg.batch_size}, {session.record['hardware']}"
    )
    unet.train()
    with _stop_on_signals() as stop:
        try:
            while state["step"] < max_steps:
                if time.time() - started > max_minutes * 60 or stop["signal"] is not None:
                    break
                step = state["step"]
                loss = objective.loss(unet, step)
                _update(unet, ema, opt, loss, cfg, step, state.get("warmup_from", 0))
                state["step"] = step + 1
                session.window.append(loss.item())
                if on_step is not None:
                    on_step(state["step"], session.window[-1])
                if state["step"] % log_every == 0 or state["step"] == max_steps:
                    session.log_window()
                if state["step"] % checkpoint_every == 0:
                    session.checkpoint(unet, ema, opt, cfg)
        finally:
            if state["step"] > session.saved_step:
                session.checkpoint(unet, ema, opt, cfg)
    if stop["signal"] is not None:
        log(f"stopped by signal {stop['signal']} at step {state['step']} (checkpoint written)")
    return state


def warm_start_state(weights: Path, cfg: TrainConfig) -> dict[str, Any]:
    """The training state that exported weights carry (their folder's ``config.json``).

    Checkpoints (with the optimizer state) live in the cache, which a fresh machine lacks; the
    exported EMA weights are committed. Continuing from them loses the optimizer state and the
    raw (non-EMA) weights: the EMA weights become both, Adam starts afresh and the learning
    rate warms up again. Steps keep counting from the weights' step, so the per-step data
    stream continues where it stopped, and the log records the warm start.
    """
    meta_path = weights.parent / "config.json"
    try:
        meta = json.loads(meta_path.read_text())["training"]
    except (OSError, KeyError, ValueError):
        raise OODBenchError(
            f"Cannot warm-start from {weights}: {meta_path} with its training summary is "
            "missing; export weights with --export-only first."
        ) from None
    wanted = json.loads(json.dumps(dataclasses.asdict(cfg)))
    diff = sorted(k for k in wanted if meta.get("config", {}).get(k) != wanted[k])
    if diff:
        raise OODBenchError(
            f"{weights} were trained with other settings ({', '.join(diff)}): pass the same "
            "settings to continue from them."
        )
    step = int(meta["steps"])
    return {
        "step": step,
        "warmup_from": step,
        "train_seconds": float(meta.get("train_minutes", 0.0)) * 60,
        "config": dataclasses.asdict(cfg),
        "log": [],
        "sessions": list(meta.get("sessions", [])),
        "warm_start": {"weights_sha256": file_sha256(weights), "step": step},
    }


# -- export --------------------------------------------------------------------------------------

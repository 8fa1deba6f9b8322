"""Train ``mini-diffusion`` on the offline catalogue's train split: on the CPU, resumably.

A CPU step of the 4.6 M-parameter UNet at batch 32 takes seconds, so a useful model needs hours
spread over several sessions. Every step draws its data, masks, noise and timesteps from a
generator seeded by (seed, step), the learning rate is a function of the step, and checkpoints
(weights, EMA weights, optimizer state, log) are written atomically every N steps: a resumed
run continues exactly as an uninterrupted one would. Run::

    python -m oodbench_mini.train_diffusion --max-minutes 90     # resumes from --resume-dir
    python -m oodbench_mini.train_diffusion --export-only        # latest checkpoint -> weights

Checkpoints live in the cache; on a machine without them, continue from the committed weights
(fresh optimizer, learning rate warmed up again; the README's log records it)::

    python -m oodbench_mini.train_diffusion --init-weights \
        oodbench/mini/diffusion_weights/mini_diffusion.safetensors --max-minutes 90

On a GPU machine that has no copy of the offline data, pack the corpus here (43 MB), carry it
over, and train there with a larger batch into a fresh checkpoint folder::

    python -m oodbench_mini.train_diffusion --pack-corpus .carry/md-corpus.npz
    python -m oodbench_mini.train_diffusion --device cuda --corpus .carry/md-corpus.npz \
        --batch-size 256 --lr 1e-3 --resume-dir .carry/md-gpu --max-minutes 8 --export

On a CPU shared with other jobs, run it with ``OMP_WAIT_POLICY=PASSIVE``: spinning OpenMP
threads made a training step ~4x slower there (measured: 43 s vs 10 s per step).

Training texts mix the catalogue's captions, "a photo of a {concept}." style prompts and the
same for the coarse category (so "a photo of a mammal." is in-distribution for prompts), with
10 % empty texts for classifier-free guidance. Masks: half whole-image (text-to-image), half
boxes / complements / half-images (in-painting).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import random
import shlex
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from oodbench.errors import OODBenchError
from oodbench.paths import cache_dir
from oodbench_mini.diffusion import (
    DEFAULT_WEIGHTS,
    MAX_TOKENS,
    RESOLUTION,
    SCHEDULER_CONFIG,
    UNET_CONFIG,
    build_unet,
    encode_text,
    random_masks,
    save_weights,
    unet_forward,
    unet_input,
)
from oodbench_mini.model import TEXT_PACKAGE, TextTower, file_sha256
from oodbench_mini.train import catalog_path

TEMPLATES = (
    "a photo of a {}.",
    "a drawing of a {}.",
    "an icon of a {}.",
    "a clip art of a {}.",
    "a picture of a {}.",
    "a {}.",
    "{}",
)
FORMAT = "mini-diffusion/1"
CKPT_PREFIX = "ckpt-"


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


PACK_FIELDS = ("caption", "concept", "category")


class Corpus:
    """The train split at the model's resolution (uint8, in memory) with its texts.

    Read from the catalogue, or from a packed ``.npz`` (``--pack-corpus``): ~43 MB at 32x32,
    small enough to carry to a GPU machine that has no copy of the offline data.
    """

    def __init__(self, data_dir: Path | None, resolution: int, packed: Path | None = None) -> None:
        if packed is not None:
            self._load_packed(packed, resolution)
        else:
            self._load_catalog(data_dir, resolution)
        # categories sampled ~evenly (1/sqrt(n) per image): Fashion-MNIST's 10k images must
        # not drown the few hundred clip-art images of each other category
        counts = Counter(r["category"] for r in self.rows)
        self.weights = torch.tensor(
            [counts[r["category"]] ** -0.5 for r in self.rows], dtype=torch.double
        )

    def _load_catalog(self, data_dir: Path | None, resolution: int) -> None:
        from oodbench_mini.corpus import read_catalog

        path = catalog_path(data_dir)
        self.rows = [r for r in read_catalog(path) if r["split"] == "train"]
        if not self.rows:
            raise OODBenchError(f"The catalogue {path} has no train-split images.")
        arrays = []
        for r in self.rows:
            with Image.open(path.parent / r["path"]) as img:
                img = img.convert("RGB").resize((resolution, resolution), Image.Resampling.BOX)
                arrays.append(np.asarray(img))
        self.pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def _load_packed(self, packed: Path, resolution: int) -> None:
        try:
            with np.load(packed) as data:
                pixels, rows = data["pixels"], json.loads(data["rows"].tobytes().decode())
        except (OSError, KeyError, ValueError) as exc:
            raise OODBenchError(f"Cannot read the packed corpus {packed}: {exc}; rebuild it "
                                "with --pack-corpus.") from None
        if pixels.shape[-1] != resolution:
            raise OODBenchError(f"{packed} holds {pixels.shape[-1]}px images, the model wants "
                                f"{resolution}px: rebuild it with --pack-corpus.")
        self.rows, self.pixels = rows, torch.from_numpy(pixels)

    def pack(self, out: Path) -> None:
        """Write pixels and texts to one ``.npz`` (atomically)."""
        rows = json.dumps([{k: r[k] for k in PACK_FIELDS} for r in self.rows]).encode()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez(tmp, pixels=self.pixels.numpy(), rows=np.frombuffer(rows, dtype=np.uint8))
        os.replace(tmp, out)

    def __len__(self) -> int:
        return len(self.rows)

    def text(self, row: dict, rnd: random.Random, cfg: TrainConfig) -> str:
        if rnd.random() < cfg.cfg_dropout:
            return ""
        u = rnd.random()
        if u < cfg.caption_share:
            return row["caption"]
        name = row["concept"] if u < (1 + cfg.caption_share) / 2 else row["category"]
        return rnd.choice(TEMPLATES).format(name)

    def batch(
        self, n: int, gen: torch.Generator, rnd: random.Random, cfg: TrainConfig
    ) -> tuple[torch.Tensor, list[str]]:
        """[n, 3, R, R] pixels in [-1, 1] (random horizontal flips) and one text each."""
        idx = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        x = self.pixels[idx].float() / 127.5 - 1.0
        flip = torch.rand(n, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        return x, [self.text(self.rows[int(i)], rnd, cfg) for i in idx]


# -- checkpoints ---------------------------------------------------------------------------------
def checkpoints(resume_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a folder appears only once fully written)."""
    if not resume_dir.exists():
        return []
    found = [
        p for p in resume_dir.glob(f"{CKPT_PREFIX}*") if p.is_dir() and (p / "state.json").exists()
    ]
    return sorted(found, key=lambda p: int(p.name[len(CKPT_PREFIX) :]))


def latest_checkpoint(resume_dir: Path) -> Path | None:
    found = checkpoints(resume_dir)
    return found[-1] if found else None


def save_checkpoint(
    resume_dir: Path,
    unet: Any,
    ema: Any,
    opt: torch.optim.Optimizer,
    state: dict,
    model_config: dict,
    keep: int = 2,
) -> Path:
    """Write into a temporary folder, then rename it into place; keep the newest ``keep``."""
    resume_dir.mkdir(parents=True, exist_ok=True)
    final = resume_dir / f"{CKPT_PREFIX}{state['step']:07d}"
    tmp = resume_dir / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_weights(unet, tmp / "unet.safetensors", model_config)
    save_weights(ema, tmp / "ema.safetensors", model_config)
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    if final.exists():  # the same step written again (e.g. an export after a stop)
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoints(resume_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in resume_dir.glob(".tmp-*"):
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _load_into(module: Any, path: Path) -> None:
    from safetensors.torch import load_file

    module.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})


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
    state: dict[str, Any]
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
    elif init_weights is not None:
        state = warm_start_state(Path(init_weights), cfg)
    else:
        state = {
            "step": 0,
            "train_seconds": 0.0,
            "config": dataclasses.asdict(cfg),
            "log": [],
            "sessions": [],
        }
    torch.manual_seed(cfg.seed)  # the initial weights
    unet = build_unet(cfg.unet)
    ema = build_unet(cfg.unet).requires_grad_(False)
    ema.load_state_dict(unet.state_dict())
    dev = torch.device(device)
    unet.to(dev)  # before the optimizer loads its state: it follows the parameters' device
    ema.to(dev)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if latest is not None:
        _load_into(unet, latest / "unet.safetensors")
        _load_into(ema, latest / "ema.safetensors")
        opt.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
        log(f"resumed from {latest} at step {state['step']}")
    elif init_weights is not None:
        _load_into(unet, Path(init_weights))
        _load_into(ema, Path(init_weights))
        log(f"warm start from {init_weights} at step {state['step']} (fresh optimizer)")
    scheduler = DDPMScheduler.from_config(cfg.scheduler)
    alphas = scheduler.alphas_cumprod
    v_pred = scheduler.config.prediction_type == "v_prediction"
    corpus = Corpus(data_dir, int(cfg.unet.get("sample_size", RESOLUTION)), packed_corpus)
    tower = text_tower or TextTower(dev)
    alphas = alphas.to(dev)
    session = {
        "from_step": state["step"],
        "hardware": hardware(dev),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    log(
        f"training mini-diffusion: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M "
        f"params, {len(corpus)} train images, batch {cfg.batch_size}, {session['hardware']}"
    )

    stop = {"signal": None}

    def _stop(signum: int, _frame: Any) -> None:
        stop["signal"] = signum

    handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            handlers[sig] = signal.signal(sig, _stop)

    clock = {"last": started, "saved_step": state["step"]}
    state["sessions"].append(session)

    def checkpoint() -> Path:
        now = time.time()
        state["train_seconds"] = round(state["train_seconds"] + now - clock["last"], 1)
        clock["last"], clock["saved_step"] = now, state["step"]
        session.update(to_step=state["step"], seconds=round(now - started, 1))
        return save_checkpoint(resume_dir, unet, ema, opt, state, cfg.model_config())

    window: list[float] = []
    window_start = time.time()
    unet.train()
    try:
        while state["step"] < max_steps:
            if time.time() - started > max_minutes * 60 or stop["signal"] is not None:
                break
            step = state["step"]
            gen, rnd = _step_rng(cfg.seed, step)
            x0, texts = corpus.batch(cfg.batch_size, gen, rnd, cfg)
            masks = random_masks(cfg.batch_size, x0.shape[-1], gen, cfg.full_mask)
            noise = torch.randn(x0.shape, generator=gen)
            t = torch.randint(
                0, scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=gen
            )
            x0, masks, noise, t = x0.to(dev), masks.to(dev), noise.to(dev), t.to(dev)
            x_t = scheduler.add_noise(x0, noise, t)
            target = scheduler.get_velocity(x0, noise, t) if v_pred else noise
            text = encode_text(tower, texts, cfg.max_tokens)
            pred = unet_forward(unet, unet_input(x_t, masks, x0 * (1 - masks)), t, text)
            snr = alphas[t] / (1 - alphas[t])
            weight = snr.clamp(max=cfg.min_snr_gamma) / (snr + 1 if v_pred else snr)
            loss = (weight * (pred.float() - target).pow(2).mean(dim=(1, 2, 3))).mean()
            # a warm start re-warms: a fresh Adam at full rate would jolt the weights
            since = step - state.get("warmup_from", 0)
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
            state["step"] = step + 1
            window.append(loss.item())
            if on_step is not None:
                on_step(state["step"], window[-1])
            if state["step"] % log_every == 0 or state["step"] == max_steps:
                per_step = (time.time() - window_start) / len(window)
                entry = {
                    "step": state["step"],
                    "loss": round(float(np.mean(window)), 5),
                    "s_per_step": round(per_step, 3),
                    "minutes": round(
                        (state["train_seconds"] + time.time() - clock["last"]) / 60, 2
                    ),
                }
                state["log"].append(entry)
                log(
                    f"step {entry['step']} loss {entry['loss']:.4f} "
                    f"{per_step:.2f} s/step total {entry['minutes']:.1f} min"
                )
                window, window_start = [], time.time()
            if state["step"] % checkpoint_every == 0:
                checkpoint()
    finally:
        if state["step"] > clock["saved_step"]:
            checkpoint()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
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
def summarise(state: dict) -> dict[str, Any]:
    log = state.get("log", [])
    losses = [e["loss"] for e in log]
    tail = losses[-10:]
    return {
        "steps": state["step"],
        "train_minutes": round(state["train_seconds"] / 60, 1),
        "batch_size": state["config"]["batch_size"],
        "images_seen": state["step"] * state["config"]["batch_size"],
        "seed": state["config"]["seed"],
        "loss_first_logged": losses[0] if losses else None,
        "loss_last_10_logs_mean": round(float(np.mean(tail)), 5) if tail else None,
        "s_per_step_last": log[-1]["s_per_step"] if log else None,
        **({"warm_start": state["warm_start"]} if "warm_start" in state else {}),
        "sessions": state.get("sessions", []),
    }


def export(
    resume_dir: Path | None = None,
    out_path: Path = DEFAULT_WEIGHTS,
    command: str = "",
    half: bool = True,
    note: str = "",
) -> dict[str, Any]:
    """The newest checkpoint's EMA weights -> ``out_path`` (+ config.json, README, SHA256SUMS)."""
    from oodbench_mini.diffusion import load_weights

    resume_dir = Path(resume_dir) if resume_dir is not None else default_resume_dir()
    latest = latest_checkpoint(resume_dir)
    if latest is None:
        raise OODBenchError(
            f"No checkpoint in {resume_dir}: train first "
            "(`python -m oodbench_mini.train_diffusion`)."
        )
    state = json.loads((latest / "state.json").read_text())
    ema, config = load_weights(latest / "ema.safetensors")
    out_path = Path(out_path)
    save_weights(ema, out_path, config, half=half)
    summary = summarise(state)
    sha = file_sha256(out_path)
    folder = out_path.parent
    (folder / "config.json").write_text(
        json.dumps({**config, "training": {**summary, "config": state["config"]}}, indent=1) + "\n"
    )
    (folder / "SHA256SUMS").write_text(f"{sha}  {out_path.name}\n")
    write_readme(out_path, sha, summary, command, note)
    return {"path": str(out_path), "sha256": sha, "bytes": out_path.stat().st_size, **summary}


def write_readme(out_path: Path, sha: str, summary: dict, command: str, note: str = "") -> None:
    folder = out_path.parent
    evaluation = folder / "evaluation.json"
    eval_lines: list[str] = []
    if evaluation.exists():
        data = json.loads(evaluation.read_text())
        if data.get("sha256") == sha:  # only numbers measured on exactly these weights
            eval_lines = [
                "Measured on these weights (`benchmarks/diffusion_prompt_following.py`):",
                "",
                "```json",
                json.dumps(data, indent=1),
                "```",
                "",
            ]
    n_params = sum(int(np.prod(s)) for s in _shapes(out_path))
    sessions = summary.get("sessions", [])
    hardware_line = sessions[-1]["hardware"] if sessions else "unknown"
    lines = [
        "# mini-diffusion weights",
        "",
        f"`{out_path.name}`: the EMA weights (float16) of the `mini-diffusion` image generator",
        "(`oodbench/mini/diffusion.py`): a diffusers `UNet2DConditionModel` "
        f"({n_params / 1e6:.2f} M parameters),",
        "32x32 RGB pixel space, 7 input channels (noisy image + mask + masked image), conditioned",
        f"on the frozen all-MiniLM-L6-v2 text tower (PyPI `{TEXT_PACKAGE}`). `config.json` holds",
        "the UNet and scheduler configs (also embedded in the file's metadata) and the training",
        "settings. Trained on the train split of the offline catalogue (`oodbench data",
        "fetch-offline`); the test split, which the suites evaluate on, was never seen.",
        "",
        f"- sha256: `{sha}`",
        f"- size: {out_path.stat().st_size} bytes",
        f"- trained: {summary['steps']} steps of batch {summary['batch_size']} "
        f"({summary['images_seen']} samples) in {summary['train_minutes']} minutes",
        f"- hardware: {hardware_line}",
        "",
        *([note, ""] if note else []),
        "Trained with (the command resumes from its checkpoints: run it again to train longer):",
        "",
        "```",
        command or "python -m oodbench_mini.train_diffusion",
        "```",
        "",
        "and exported (the newest checkpoint's EMA weights -> this folder) with:",
        "",
        "```",
        "python -m oodbench_mini.train_diffusion --export-only",
        "```",
        "",
        *eval_lines,
        "Training log summary:",
        "",
        "```json",
        json.dumps(summary, indent=1),
        "```",
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines))


def _shapes(path: Path) -> list[list[int]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return [list(f.get_slice(k).get_shape()) for k in f.keys()]  # noqa: SIM118


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the mini-diffusion model (resumable).")
    parser.add_argument(
        "--resume-dir",
        type=Path,
        default=None,
        help=f"checkpoint folder (default {default_resume_dir()})",
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--max-steps", type=int, default=100_000, help="total steps")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="budget of this run")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_WEIGHTS,
        help="where --export / --export-only write the weights",
    )
    parser.add_argument("--export", action="store_true", help="export the weights after training")
    parser.add_argument(
        "--export-only", action="store_true", help="only export the newest checkpoint's EMA weights"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="train on a packed .npz (from --pack-corpus), not the catalogue")
    parser.add_argument("--pack-corpus", type=Path, default=None,
                        help="only write the 32x32 train corpus to this .npz and exit")
    parser.add_argument("--init-weights", type=Path, default=None,
                        help="with no checkpoint yet, continue from these exported weights "
                        "(e.g. the committed ones; fresh optimizer)")
    parser.add_argument("--command", default="", help="the training command for README.md")
    parser.add_argument("--note", default="", help="a free-text note for README.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.pack_corpus is not None:
        Corpus(args.data_dir, int(UNET_CONFIG["sample_size"])).pack(args.pack_corpus)
        print(f"packed corpus -> {args.pack_corpus}")
        return
    command = args.command
    if not command and not args.export_only:
        command = "python -m oodbench_mini.train_diffusion " + shlex.join(
            a for a in sys.argv[1:] if a != "--export"
        )
    if not args.export_only:
        cfg = TrainConfig(seed=args.seed, batch_size=args.batch_size, lr=args.lr)
        state = train(
            args.resume_dir,
            args.max_steps,
            args.max_minutes,
            args.checkpoint_every,
            cfg,
            args.data_dir,
            log=lambda m: print(m, flush=True),
            device=args.device,
            packed_corpus=args.corpus,
            init_weights=args.init_weights,
        )
        print(json.dumps({k: v for k, v in summarise(state).items() if k != "sessions"}))
    if args.export or args.export_only:
        print(json.dumps(export(args.resume_dir, args.out, command, note=args.note), indent=1))


if __name__ == "__main__":
    main()

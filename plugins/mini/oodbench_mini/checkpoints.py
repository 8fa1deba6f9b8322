"""Training checkpoints of mini-diffusion: written atomically, the newest few kept.

A checkpoint folder (``ckpt-<step>``) holds the weights, the EMA weights, the optimizer state
and ``state.json`` (step, config, log); it appears only once fully written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from oodbench_mini.diffusion import save_weights

CKPT_PREFIX = "ckpt-"


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


def load_into(module: Any, path: Path) -> None:
    from safetensors.torch import load_file

    module.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})

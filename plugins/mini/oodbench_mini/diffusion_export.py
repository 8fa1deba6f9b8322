"""Export a mini-diffusion checkpoint: EMA weights + config.json, SHA256SUMS and README.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.errors import OODBenchError
from oodbench_mini.checkpoints import latest_checkpoint
from oodbench_mini.diffusion import DEFAULT_WEIGHTS, load_weights, save_weights
from oodbench_mini.model import TEXT_PACKAGE, file_sha256
from oodbench_mini.train_diffusion import default_resume_dir

TOOL = "python plugins/mini/tools/train_diffusion.py"


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
    resume_dir = Path(resume_dir) if resume_dir is not None else default_resume_dir()
    latest = latest_checkpoint(resume_dir)
    if latest is None:
        raise OODBenchError(
            f"No checkpoint in {resume_dir}: train first "
            f"(`{TOOL}`)."
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
        "(`plugins/mini/oodbench_mini/diffusion.py`): a diffusers `UNet2DConditionModel` "
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
        command or TOOL,
        "```",
        "",
        "and exported (the newest checkpoint's EMA weights -> this folder) with:",
        "",
        "```",
        f"{TOOL} --export-only",
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

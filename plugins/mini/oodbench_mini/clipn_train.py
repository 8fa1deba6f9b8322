"""Train mini-clipn's "no" tower with CLIPN's two losses (the command line is
``plugins/mini/tools/train_clipn.py``).

Data: the offline catalogue's train split, the images the mini image tower was trained on.
Each image is paired with one text per step, drawn uniformly among its caption, a prompt of
its concept and a prompt of its coarse category (the image tower's templates). Image i and
text j *match* when the text names the image's concept or category (CLIPN's pairs come from
web captions and only the diagonal matches; here several images of a batch often share a
concept, so the diagonal is generalised to this match matrix).

Losses (CLIPN ``loss.py``), with logits s*cos (s = 100) and p = softmax over [yes, no] per
image-text pair:

* image-text binary-opposite: -log p_yes averaged over matching pairs plus -log p_no averaged
  over the other pairs;
* text semantic-opposite: 2 - sqrt(|t - t_no|^2 + 1e-4) = 2 - sqrt(2 - 2 t.t_no + 1e-4),
  averaged over the batch's texts (pushes each "no" embedding away from its "yes" one);
* total = 0.5 * (yes + no + semantic-opposite), as CLIPN's train.py.

The image tower and the yes tower are frozen, so image embeddings, yes text embeddings and
the frozen layers' hidden states are computed once; a step runs only the trained layers.
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

from oodbench.data.offline import catalog_file
from oodbench_mini.clipn import CONTEXT, NoTower, save_no_tower
from oodbench_mini.corpus import read_catalog
from oodbench_mini.model import MiniBackbone, file_sha256, normalise_pixels
from oodbench_mini.train_tower import TEMPLATES, load_pixels

SCALE = 100.0  # CLIPN's logit scale (its classifier's fixed 100)


@dataclass
class Pool:
    """The training texts: frozen hidden states (float16, padded), masks, yes embeddings and
    the names (concepts / categories) each text describes."""

    texts: list[str]
    hidden: torch.Tensor  # [P, L, D] float16
    mask: torch.Tensor  # [P, L]
    yes: torch.Tensor  # [P, D] normalised
    names: list[frozenset[str]]


def text_pool(rows: list[dict], seed: int) -> tuple[list[str], list[frozenset[str]],
                                                    dict[str, list[list[int]]]]:
    """Texts, their names, and per kind the text ids each image may draw (by row)."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    names: dict[str, set[str]] = {}
    position: dict[str, int] = {}

    def add(text: str, name: str) -> int:
        if text not in position:
            position[text] = len(texts)
            texts.append(text)
            names[text] = set()
        names[text].add(name)
        return position[text]

    concept_text = {c: add(TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(c), c)
                    for c in sorted({r["concept"] for r in rows})}
    category_texts = {g: [add(t.format(g), g) for t in TEMPLATES]
                      for g in sorted({r["category"] for r in rows})}
    caption = [add(r["caption"], r["concept"]) for r in rows]
    choices = {"caption": [[i] for i in caption],
               "concept": [[concept_text[r["concept"]]] for r in rows],
               "category": [category_texts[r["category"]] for r in rows]}
    return texts, [frozenset(names[t]) for t in texts], choices


@torch.no_grad()
def build_pool(tower: NoTower, tokenizer, texts: list[str],
               names: list[frozenset[str]]) -> Pool:
    ids, mask = tokenizer(texts, CONTEXT)
    lengths = mask.sum(1)
    hidden = torch.zeros(len(texts), ids.shape[1], tower.proj.in_features, dtype=torch.float16)
    yes = torch.zeros(len(texts), tower.proj.in_features)
    base = tower.base[0]
    for length in torch.unique(lengths).tolist():  # equal-length batches, as TextTower.encode
        rows = torch.nonzero(lengths == length).flatten()
        for i in range(0, len(rows), 256):
            chunk = rows[i : i + 256]
            batch = ids[chunk.repeat(2) if len(chunk) == 1 else chunk, :length]
            ones = torch.ones_like(batch)
            h = tower.frozen_hidden(batch, ones)
            hidden[chunk, :length] = h[: len(chunk)].half()
            x = h
            for layer in base.layers[tower.frozen :]:
                x = layer(x, torch.zeros(1))
            yes[chunk] = F.normalize(x.mean(1), dim=-1)[: len(chunk)]
    return Pool(texts, hidden, mask, yes, names)


@torch.no_grad()
def image_embeddings(backbone: MiniBackbone, pixels: torch.Tensor) -> torch.Tensor:
    out = [backbone.encode_images(normalise_pixels(pixels[i : i + 512].float() / 255.0))
           for i in range(0, len(pixels), 512)]
    return torch.cat(out)


def clipn_losses(image: torch.Tensor, yes: torch.Tensor, no: torch.Tensor, match: torch.Tensor,
                 scale: float = SCALE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(binary-opposite yes, binary-opposite no, semantic-opposite) losses of one batch.

    ``image`` [B, D], ``yes`` / ``no`` [T, D] normalised; ``match`` [B, T] bool.
    """
    margin = scale * (image @ yes.T - image @ no.T)  # logit_yes - logit_no per pair
    log_yes, log_no = F.logsigmoid(margin), F.logsigmoid(-margin)
    m = match.to(margin.dtype)
    loss_yes = -(log_yes * m).sum() / m.sum().clamp(min=1.0)
    loss_no = -(log_no * (1 - m)).sum() / (1 - m).sum().clamp(min=1.0)
    tso = (2 - torch.sqrt(2 - 2 * (yes * no).sum(-1) + 1e-4)).mean()
    return loss_yes, loss_no, tso


def _schedule(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, total // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / total)))


def _batch(rows_cat: list[str], rows_concept: list[str], choices: dict[str, list[list[int]]],
           idx: torch.Tensor, pool: Pool, gen: torch.Generator) -> tuple[list[int], torch.Tensor]:
    kinds = ("caption", "concept", "category")
    draw = torch.randint(0, len(kinds), (len(idx),), generator=gen).tolist()
    text_ids = []
    for row, k in zip(idx.tolist(), draw, strict=True):
        options = choices[kinds[k]][row]
        text_ids.append(options[int(torch.randint(0, len(options), (1,), generator=gen))])
    match = torch.tensor([[bool({rows_concept[r], rows_cat[r]} & pool.names[t])
                           for t in text_ids] for r in idx.tolist()])
    return text_ids, match


def train_no_tower(data_dir: Path | None, out_path: Path, steps: int = 200,
                   batch_size: int = 64, lr: float = 5e-4, trained_layers: int = 2,
                   seed: int = 0, log: bool = True) -> dict:
    """Train, save float16 safetensors at ``out_path``; return the log summary."""
    start = time.time()
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    cat_path = catalog_file(data_dir)
    rows = [r for r in read_catalog(cat_path) if r["split"] == "train"]
    backbone = MiniBackbone()
    backbone.load(torch.device("cpu"))
    images = image_embeddings(backbone, load_pixels([cat_path.parent / r["path"] for r in rows]))
    tower = NoTower(backbone._text.model, trained_layers)
    texts, names, choices = text_pool(rows, seed)
    pool = build_pool(tower, backbone._text.tokenizer, texts, names)
    prep_s = time.time() - start
    if log:
        print(f"{len(rows)} images, {len(texts)} texts prepared in {prep_s:.0f}s", flush=True)
    counts = Counter(r["category"] for r in rows)
    weights = torch.tensor([counts[r["category"]] ** -0.5 for r in rows], dtype=torch.double)
    opt = torch.optim.AdamW([
        {"params": [*tower.layers.parameters(), *tower.proj.parameters()], "weight_decay": 0.01},
        {"params": [tower.prompt_no], "weight_decay": 0.0}], lr=lr)
    sched = _schedule(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    cats, concepts = [r["category"] for r in rows], [r["concept"] for r in rows]
    history: list[list[float]] = []
    tower.train()
    for step in range(steps):
        idx = torch.multinomial(weights, batch_size, True, generator=gen)
        text_ids, match = _batch(cats, concepts, choices, idx, pool, gen)
        t = torch.tensor(text_ids)
        width = int(pool.mask[t].sum(1).max())
        choice = torch.randint(0, tower.prompt_no.shape[0] + 1, (len(t),), generator=gen)
        prompts = torch.cat([tower.prompt_no, tower.prompt_no.mean(0, keepdim=True)])[choice]
        no = F.normalize(tower.head(pool.hidden[t, :width].float(), pool.mask[t, :width],
                                    prompts), dim=-1)
        parts = clipn_losses(images[idx], pool.yes[t], no, match)
        loss = 0.5 * sum(parts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tower.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append([float(loss.detach()), *(float(p.detach()) for p in parts)])
        if log and (step + 1) % 25 == 0:
            mean = np.mean(history[-25:], axis=0)
            print(f"step {step + 1}/{steps} loss {mean[0]:.4f} (yes {mean[1]:.4f} no "
                  f"{mean[2]:.4f} tso {mean[3]:.4f}) t={time.time() - start:.0f}s", flush=True)
    tower.eval()
    summary = _summary(rows, texts, steps, batch_size, lr, trained_layers, seed, history,
                       prep_s, start)
    save_no_tower(tower, Path(out_path), {"summary": json.dumps(summary),
                                          "trained_by": "plugins/mini/tools/train_clipn.py"})
    summary["sha256"] = file_sha256(Path(out_path))
    summary["bytes"] = Path(out_path).stat().st_size
    return summary


def _summary(rows: list[dict], texts: list[str], steps: int, batch_size: int, lr: float,
             trained_layers: int, seed: int, history: list[list[float]], prep_s: float,
             start: float) -> dict:
    chunks = np.array_split(np.asarray(history), min(10, len(history)))
    return {
        "train_images": len(rows), "texts": len(texts), "steps": steps,
        "batch_size": batch_size, "lr": lr, "trained_layers": trained_layers, "seed": seed,
        "scale": SCALE,
        "loss_per_tenth": [[round(float(v), 4) for v in c.mean(0)] for c in chunks],
        "loss_columns": ["total", "binary_yes", "binary_no", "semantic_opposite"],
        "prepare_wall_s": round(prep_s, 1), "train_wall_s": round(time.time() - start, 1),
        "torch": torch.__version__,
    }

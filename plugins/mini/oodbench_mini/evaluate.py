"""Zero-shot ID accuracy and MCM AUROC of the mini backbone on the offline suites.

The training tool records these numbers in the weights' README; ``benchmarks/mini_zero_shot.py``
prints them for any weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import oodbench

SUITES_DIR = Path(oodbench.__file__).resolve().parent / "suites"  # offline-*.yaml


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
    """``evaluate_suite`` for every offline suite (``oodbench/suites/offline-*.yaml``)."""
    import yaml

    from oodbench_mini.model import MiniBackbone

    backbone = MiniBackbone(weights=str(weights))
    backbone.load(torch.device("cpu"))
    return {
        f.stem: evaluate_suite(backbone, yaml.safe_load(f.read_text()), data_dir)
        for f in sorted(SUITES_DIR.glob("offline-*.yaml"))
    }

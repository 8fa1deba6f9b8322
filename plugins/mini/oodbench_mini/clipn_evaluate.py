"""mini-clipn on the offline suites: the yes tower's zero-shot accuracy and MCM AUROC next to
CLIPN's ATD / CTW AUROC (the "no" tower at work), per OOD set. The training tool writes these
numbers into ``clipn_weights/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from oodbench.baselines.clipn import CLIPN_SCALE, clipn_scores
from oodbench_mini.clipn import MiniCLIPNBackbone
from oodbench_mini.evaluate import SUITES_DIR


def _encode(backbone: MiniCLIPNBackbone, paths: list[Path]) -> torch.Tensor:
    pre = backbone.preprocess()
    out = [backbone.encode_images(torch.stack([pre(Image.open(p)) for p in paths[i : i + 512]]))
           for i in range(0, len(paths), 512)]
    return torch.cat(out) if out else torch.empty(0, backbone.embed_dim)


def _table(encode, classes: list[str], prompts: list[str]) -> torch.Tensor:
    total = sum(encode([p.format(c) for c in classes]) for p in prompts)
    return F.normalize(total, dim=-1)


def _scores(z: torch.Tensor, yes: torch.Tensor, no: torch.Tensor) -> dict[str, np.ndarray]:
    return {"mcm": torch.softmax(z @ yes.T, dim=1).max(1).values.numpy(),
            "atd": clipn_scores(z, yes, no, CLIPN_SCALE, "atd"),
            "ctw": clipn_scores(z, yes, no, CLIPN_SCALE, "ctw")}


def evaluate_suite(backbone: MiniCLIPNBackbone, suite: dict, data_dir: Path | None) -> dict:
    from sklearn.metrics import roc_auc_score

    from oodbench.data.offline import load_offline_source

    classes = list(suite["id"]["classes"])
    prompts = suite.get("prompts") or ["a photo of a {}."]
    yes = _table(backbone.encode_texts, classes, prompts)
    no = _table(backbone.encode_texts_no, classes, prompts)
    paths, keys = load_offline_source(suite["id"]["test"], data_dir)
    z = _encode(backbone, paths)
    labels = torch.tensor([classes.index(k) for k in keys])
    acc = float(((z @ yes.T).argmax(1) == labels).float().mean())
    id_scores = _scores(z, yes, no)
    result: dict = {"id_acc": round(acc, 4), "ood": {}}
    for ood in suite.get("ood", []):
        ood_paths, _ = load_offline_source(ood["source"], data_dir)
        ood_scores = _scores(_encode(backbone, ood_paths), yes, no)
        y = np.r_[np.ones(len(paths)), np.zeros(len(ood_paths))]
        result["ood"][ood["name"]] = {
            "group": ood["group"],
            **{f"{k}_auroc": round(float(roc_auc_score(y, np.r_[id_scores[k], ood_scores[k]])), 4)
               for k in id_scores}}
    for k in id_scores:
        result[f"{k}_auroc"] = round(float(np.mean(
            [v[f"{k}_auroc"] for v in result["ood"].values()])), 4)
    return result


def evaluate_suites(no_weights: Path | str = "", data_dir: Path | None = None) -> dict:
    """``evaluate_suite`` for every offline suite with the given "no"-tower weights."""
    import yaml

    backbone = MiniCLIPNBackbone(no_weights=str(no_weights))
    backbone.load(torch.device("cpu"))
    return {f.stem: evaluate_suite(backbone, yaml.safe_load(f.read_text()), data_dir)
            for f in sorted(SUITES_DIR.glob("offline-*.yaml"))}

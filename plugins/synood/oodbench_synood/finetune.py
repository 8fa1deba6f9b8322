"""SynOOD's fine-tuners as oodbench components: stage A (image side) and stage B (labels).

Both read the synthesizer's images and the ID images they came from, encode them once through
the feature cache, mine each synthetic image's negative label in the head's negative bank
(the NegLabel bank from the label generator), train on features, and cache the trained tensors
keyed by everything that produced them. The runner times each stage (record ``timings``:
``finetune:synood-projection``, ``finetune:synood-label-tuning``; ``finetune`` is their sum),
and each shows progress bars (mining, training) through ``env.progress`` (the CLI's, shown on a
terminal only).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from oodbench.cache import atomic_write_bytes, content_key, tensor_digest
from oodbench.data.sources import ImageList
from oodbench.env import MethodEnv
from oodbench.errors import OODBenchError
from oodbench.interfaces import FineTuner
from oodbench.types import SampleSet, TextHead
from oodbench_synood.mining import mine_labels
from oodbench_synood.train import (
    ResidualProjection,
    batch_count,
    default_scale,
    train_label_features,
    train_projection,
)


@dataclasses.dataclass
class Prepared:
    id_feats: torch.Tensor
    id_labels: torch.Tensor
    ood_feats: torch.Tensor
    mined: np.ndarray  # index into head.extra_features per synthetic image
    used: np.ndarray  # distinct mined indices (sorted)
    key: str


def prepare(env: MethodEnv, head: TextHead, samples: SampleSet | None,
            stage: str = "") -> Prepared:
    if samples is None or head.extra_features is None:
        raise OODBenchError("SynOOD's fine-tuners need a synthesizer and a negative label bank "
                            "in the method (label_generator + synthesizer).")
    sources = [m["source"] for m in samples.manifest]
    labels = np.asarray([m["label"] for m in samples.manifest], dtype=np.int64)
    id_list = ImageList("synood-id", sources, labels, content_key("synood-id", sources))
    ood_list = ImageList("synood-ood", [str(p) for p in samples.paths],
                         np.full(len(samples.paths), -1, dtype=np.int64),
                         content_key("synood-ood", samples.meta.get("key"), len(samples.paths)))
    id_fs, ood_fs = env.encode(id_list), env.encode(ood_list)
    mined = mine_labels(ood_fs.features, head.extra_features,
                        progress=_bar(env, f"synood {stage}: mine negative labels",
                                      len(ood_fs.features)))
    key = content_key(samples.meta.get("key"), head.extra_labels[:50], len(head.extra_labels))
    return Prepared(id_fs.features, torch.as_tensor(id_fs.labels), ood_fs.features, mined,
                    np.unique(mined), key)


def _bar(env: MethodEnv, name: str, total: int) -> Callable[[int, int], None] | None:
    """A progress callback from the run (None in library use and tests: no bar)."""
    return env.progress(name, total) if env.progress else None


def _cached_tensor(env: MethodEnv, key: str, compute: Any) -> dict[str, torch.Tensor]:
    path = env.cache.path("weights", key, ".pt")
    if env.reuse("finetune") and path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    value = compute()
    buffer = io.BytesIO()
    torch.save(value, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return value


@dataclasses.dataclass
class ProjectionTuner(FineTuner):
    """Stage A: residual projection on frozen image features (ID prompts + mined labels)."""

    name = "synood-projection"
    description = "SynOOD stage A: residual projection f+ReLU(LN(Wf)) on frozen image features."
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    min_lr: float = 1e-5
    temperature: float = 0.01
    id_template: str = "a nice {}"
    # features are rescaled to feature_rms·sqrt(D) as the reference's raw CLIP ones (train.py)
    feature_rms: float = 1.0
    seed: int = 0
    enabled: bool = True  # false: the ablation without stage A

    def finetune(self, env: MethodEnv, head: TextHead, samples: SampleSet | None) -> TextHead:
        if not self.enabled:
            return head
        data = prepare(env, head, samples, "stage A")
        id_text = env.id_text_features([self.id_template])
        assert head.extra_features is not None
        text = torch.cat([id_text, head.extra_features[torch.as_tensor(data.used)]])
        position = {int(u): i for i, u in enumerate(data.used)}
        targets = torch.cat([data.id_labels, torch.as_tensor(
            [len(id_text) + position[int(m)] for m in data.mined])]).long()
        feats = torch.cat([data.id_feats, data.ood_feats])
        key = env.key("synood-projection", self.params(), data.key,
                      tensor_digest(feats, targets, text))
        scale = default_scale(feats.shape[1], self.feature_rms)

        def compute() -> dict[str, torch.Tensor]:
            bar = _bar(env, "synood stage A: train projection",
                       batch_count(len(feats), self.batch_size, self.epochs))
            model, log = train_projection(feats, targets, text, self.epochs, self.batch_size,
                                          self.lr, self.weight_decay, self.min_lr,
                                          self.temperature, self.seed, scale, bar)
            env.log(f"synood stage A: loss per epoch {[round(x, 4) for x in log.losses]}")
            return {**model.state_dict(), "losses": torch.tensor(log.losses)}

        state = _cached_tensor(env, key, compute)
        losses = state.pop("losses")
        model = ResidualProjection(feats.shape[1], scale)
        model.load_state_dict(state)
        model.eval().requires_grad_(False)
        env.notes["synood_stage_a"] = {"losses": losses.tolist(), "mined_labels": len(data.used),
                                       "id_images": len(data.id_feats),
                                       "synthetic_images": len(data.ood_feats)}
        return head.replace(image_adapter=model)


@dataclasses.dataclass
class LabelTuner(FineTuner):
    """Stage B: the mined labels' text features become free parameters, trained on the
    synthetic images (raw image features, as the reference code), then swapped into the bank."""

    name = "synood-label-tuning"
    description = "SynOOD stage B: tune the mined negative labels' text features."
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-5
    temperature: float = 0.01
    # all = the full bank with tuned rows swapped in; tuned = the tuned rows only
    negatives: Literal["all", "tuned"] = "all"
    feature_rms: float = 1.0  # label vectors start at norm feature_rms·sqrt(D) (train.py)
    seed: int = 0
    enabled: bool = True  # false: the ablation without stage B

    def finetune(self, env: MethodEnv, head: TextHead, samples: SampleSet | None) -> TextHead:
        if not self.enabled:
            return head
        if self.negatives not in ("all", "tuned"):
            raise OODBenchError("synood-label-tuning.negatives must be 'all' or 'tuned'.")
        data = prepare(env, head, samples, "stage B")
        assert head.extra_features is not None
        position = {int(u): i for i, u in enumerate(data.used)}
        targets = torch.as_tensor([position[int(m)] for m in data.mined]).long()
        init = head.extra_features[torch.as_tensor(data.used)]
        key = env.key("synood-labels", self.params(), data.key,
                      tensor_digest(data.ood_feats, targets, init))

        def compute() -> dict[str, torch.Tensor]:
            bar = _bar(env, "synood stage B: tune labels",
                       batch_count(len(data.ood_feats), self.batch_size, self.epochs))
            tuned, log = train_label_features(data.ood_feats, targets, init, self.epochs,
                                              self.batch_size, self.lr, self.momentum,
                                              self.weight_decay, self.temperature, self.seed,
                                              default_scale(init.shape[1], self.feature_rms), bar)
            env.log(f"synood stage B: loss per epoch {[round(x, 4) for x in log.losses]}")
            return {"labels": tuned, "losses": torch.tensor(log.losses)}

        state = _cached_tensor(env, key, compute)
        env.notes["synood_stage_b"] = {"losses": state["losses"].tolist(),
                                       "tuned_labels": len(data.used)}
        used = torch.as_tensor(data.used)
        if self.negatives == "tuned":
            return head.replace(extra_features=state["labels"],
                                extra_labels=[head.extra_labels[i] for i in data.used])
        bank = head.extra_features.clone()
        bank[used] = state["labels"]
        return head.replace(extra_features=bank)

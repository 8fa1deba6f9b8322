"""One method x one suite x one backbone -> one result record.

Flow: resolve the suite's sources (fails fast on missing data) -> encode ID test and OOD images
(cached) -> labels -> samples -> fine-tuning -> scorer preparation -> score -> metrics -> record.
The record is written only after everything succeeded, atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench import metrics
from oodbench.cache import ArtifactCache
from oodbench.data.sources import resolve_source
from oodbench.data.suite import Suite, load_suite
from oodbench.env import MethodEnv
from oodbench.errors import OODBenchError
from oodbench.features import FeatureStore, Progress
from oodbench.method import MethodSpec, split_overrides
from oodbench.plugins import Registry
from oodbench.results import curves, environment, utc_now, write_record
from oodbench.types import FeatureSet, RunContext, TextHead


@dataclass
class RunRequest:
    method: str
    suite: str
    backbone: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    backbone_params: dict[str, str] = field(default_factory=dict)
    output_dir: Path | None = None
    bootstrap: int = 0
    fpr_convention: str = "paper"


def resolve_method(registry: Registry, name: str) -> MethodSpec:
    path = Path(name)
    if name.endswith((".yaml", ".yml")) and path.exists():
        return MethodSpec.from_file(path)
    return registry.get("method", name).obj


def resolve_suite(registry: Registry, name: str) -> Suite:
    path = Path(name)
    if name.endswith((".yaml", ".yml")) and path.exists():
        return load_suite(path)
    return load_suite(registry.get("suite", name).obj)


def build_components(registry: Registry, spec: MethodSpec,
                     overrides: dict[str, str]) -> list[tuple[str, Any]]:
    """(role, instance) in execution order, with method-file params and CLI overrides."""
    refs = spec.components()
    fields_of = {ref.name: set(registry.get(kind, ref.name).obj.param_fields())
                 for _, kind, ref in refs}
    per_component = split_overrides(spec, overrides, fields_of)
    return [(role, registry.create(kind, ref.name, {**ref.params, **per_component[ref.name]}))
            for role, kind, ref in refs]


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0)
                                       + time.perf_counter() - start, 4)


def run(request: RunRequest, ctx: RunContext, registry: Registry,
        log: Callable[[str], None] = lambda _: None,
        progress: Callable[[str, int], Progress] | None = None) -> dict[str, Any]:
    """Run one benchmark and return its result record (also written if ``output_dir``)."""
    timer = Timer()
    start = time.perf_counter()
    spec = resolve_method(registry, request.method)
    suite = resolve_suite(registry, request.suite)
    components = build_components(registry, spec, request.params)
    backbone_name = request.backbone or suite.backbone or "mini"
    backbone = registry.create("backbone", backbone_name, request.backbone_params)

    # resolve every dataset before any expensive work: missing data fails in a second
    id_images = resolve_source(suite.id_test, suite.id_name, suite.classes)
    ood_images = {s.name: resolve_source(s.source, s.name, None) for s in suite.ood}

    with timer.stage("load_backbone"):
        backbone.load(ctx.device, ctx.dtype)
    store = FeatureStore(ArtifactCache(ctx.cache_dir))
    env = MethodEnv(ctx, backbone, backbone_name, suite, store, registry, log, progress)

    with timer.stage("encode"):
        id_feats = env.encode(id_images, f"encode {suite.id_name} (ID)")
        ood_feats = {name: env.encode(images, f"encode {name}")
                     for name, images in ood_images.items()}
    head, label_info = _prepare(env, components, timer)
    scorer = components[-1][1]
    with timer.stage("score"):
        id_scores, predictions = _score(scorer, head, id_feats)
        ood_scores = {name: _score(scorer, head, fs)[0] for name, fs in ood_feats.items()}

    record = _record(request, ctx, spec, suite, backbone_name, backbone, components, id_feats,
                     ood_feats, id_scores, predictions, ood_scores, label_info, env)
    timer.seconds["total"] = round(time.perf_counter() - start, 4)
    record["timings"] = timer.seconds
    record["cache"] = {"images_encoded": store.stats.images_encoded,
                       "texts_encoded": store.stats.texts_encoded,
                       "feature_cache_hits": store.stats.cache_hits}
    if request.output_dir is not None:
        record["path"] = str(write_record(record, request.output_dir))
    return record


def _prepare(env: MethodEnv, components: list[tuple[str, Any]],
             timer: Timer) -> tuple[TextHead, dict[str, Any]]:
    labels = samples = None
    label_info: dict[str, Any] = {}
    head = TextHead(env.id_text_features(), list(env.suite.classes))
    for role, component in components:
        if role == "label_generator":
            with timer.stage("labels"):
                labels = component.generate(env)
                head = head.replace(extra_features=env.label_features(labels),
                                    extra_labels=list(labels.labels))
            label_info = {"generator": labels.generator, "count": len(labels.labels),
                          "source": labels.source, "params": labels.params,
                          "meta": {k: v for k, v in labels.meta.items()
                                   if isinstance(v, str | int | float | bool)}}
        elif role == "synthesizer":
            with timer.stage("synthesize"):
                samples = component.synthesize(env, labels)
        elif role == "finetuner":
            with timer.stage("finetune"):
                head = component.finetune(env, head, samples)
        else:
            if component.needs_extra_labels and head.extra_features is None:
                raise OODBenchError(
                    f"Scorer {component.name!r} needs extra labels but the method has no label "
                    f"generator; add `label_generator:` to the method."
                )
            with timer.stage("prepare"):
                head = component.prepare(env, head)
    return head, label_info


def _score(scorer: Any, head: TextHead, fs: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        feats = head.adapt(fs.features)
        scores = np.asarray(scorer.score(feats, head), dtype=np.float64)
        predictions = (feats @ head.id_features.T).argmax(dim=1).numpy()
    if scores.shape != (len(fs),):
        raise OODBenchError(f"Scorer {scorer.name!r} returned shape {scores.shape} for "
                            f"{len(fs)} images; it must return one score per image.")
    return scores, predictions


def _record(request: RunRequest, ctx: RunContext, spec: MethodSpec, suite: Suite,
            backbone_name: str, backbone: Any, components: list[tuple[str, Any]],
            id_feats: FeatureSet, ood_feats: dict[str, FeatureSet], id_scores: np.ndarray,
            predictions: np.ndarray, ood_scores: dict[str, np.ndarray],
            label_info: dict[str, Any], env: MethodEnv) -> dict[str, Any]:
    per_set: dict[str, Any] = {}
    plots: dict[str, Any] = {}
    group_of = {s.name: s.group for s in suite.ood}
    for name, scores in ood_scores.items():
        m = metrics.ood_metrics(id_scores, scores, convention=request.fpr_convention)
        entry: dict[str, Any] = {"group": group_of[name], **m.as_dict()}
        if request.bootstrap:
            entry["ci"] = {k: list(v) for k, v in metrics.bootstrap_ci(
                id_scores, scores, request.bootstrap, seed=ctx.seed,
                convention=request.fpr_convention).items()}
        per_set[name] = entry
        plots[name] = curves(id_scores, scores)
    groups = {}
    for group in ("near", "far"):
        members = [metrics.ood_metrics(id_scores, ood_scores[n], request.fpr_convention)
                   for n in ood_scores if group_of[n] == group]
        if members:
            groups[group] = {**metrics.mean_metrics(members), "sets": len(members)}
    offline = all(src.get("type") == "offline"
                  for src in [suite.id_test, *(s.source for s in suite.ood)])
    return {
        "schema": "oodbench.result/1",
        "method": spec.name,
        "method_spec": spec.to_dict(),
        "params": {c.name: {"role": role, **c.params()} for role, c in components},
        "suite": {"name": suite.name, "version": suite.version, "hash": suite.hash,
                  "task": suite.task},
        "backbone": {"name": backbone_name, "params": backbone.params(),
                     "fingerprint": backbone.fingerprint()},
        "source": "offline" if offline else "real",
        "metrics": per_set,
        "groups": groups,
        "id_accuracy": metrics.id_accuracy(predictions, id_feats.labels),
        "fpr_convention": request.fpr_convention,
        "labels": label_info or None,
        "notes": env.notes,
        "counts": {
            "id": len(id_feats),
            "ood": {n: len(fs) for n, fs in ood_feats.items()},
            "skipped": {n: len(fs.skipped) for n, fs in [(suite.id_name, id_feats),
                                                         *ood_feats.items()] if fs.skipped},
            "skipped_examples": [s for fs in [id_feats, *ood_feats.values()]
                                 for s in fs.skipped][:10],
        },
        "curves": plots,
        "environment": environment(str(ctx.device), str(ctx.dtype).replace("torch.", "")),
        "seed": ctx.seed,
        "created": utc_now(),
    }

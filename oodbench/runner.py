"""One method x one suite x one backbone -> one result record.

Flow: resolve the suite's sources (fails fast on missing data) -> encode ID test and OOD images
(cached) -> labels -> samples -> fine-tuning -> scorer preparation -> score -> metrics -> record.
The record is written only after everything succeeded, atomically.

Independent generations: a label generator with an integer parameter ``generations`` = N > 1
(a stochastic generator: an LLM, an MLLM, a diffusion model) makes the runner repeat labels ->
synthesize -> finetune -> prepare -> score N times. Generation g runs with its own
:class:`RunContext` / :class:`MethodEnv` whose seed is the run seed + g, so every seeded choice
and every seeded cache key changes; images are encoded once. When a generation's label bank
equals an earlier generation's (a deterministic generator, such as the WordNet envisioner), the
later stages are not run again: it reuses that generation's scores. The record's ``metrics``,
``groups`` and ``id_accuracy`` are means over the generations; its ``generations`` block holds
the seeds, the per-generation values and the standard deviations (see ``oodbench.results``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench import metrics, shards
from oodbench.cache import ArtifactCache, ContentIndex, content_key
from oodbench.contracts.data import FeatureSet, LabelBank, RunContext, SampleSet, TextHead
from oodbench.contracts.env import MethodEnv
from oodbench.data.sources import ImageList, refuse_shared_images, resolve_source
from oodbench.data.suite import Suite, load_suite
from oodbench.errors import OODBenchError, ParameterError, PluginError
from oodbench.features import FeatureStore, Progress
from oodbench.method import MethodSpec, backbone_params, preprocessing_record, split_overrides
from oodbench.plugins import Registry
from oodbench.results import (
    curves,
    environment,
    generation_summary,
    utc_now,
    write_record,
)
from oodbench.seeds import generation_count, has_seed_parameter, seeds_moved_on
from oodbench.standins import is_offline, substitutions, with_paper_settings


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
    seeds: int | None = None  # generations to average (None: oodbench.seeds decides)


def _yaml_file(kind: str, name: str) -> Path | None:
    """``name`` as a YAML file path (None for a registered name); a missing file is named."""
    if not name.endswith((".yaml", ".yml")):
        return None
    path = Path(name)
    if not path.is_file():
        raise ParameterError(f"{kind.capitalize()} file {name} does not exist; give an existing "
                             f"YAML file or a registered {kind} name (`oodbench {kind}s`).")
    return path


def resolve_method(registry: Registry, name: str) -> MethodSpec:
    path = _yaml_file("method", name)
    return MethodSpec.from_file(path) if path else registry.get("method", name).obj


def resolve_suite(registry: Registry, name: str) -> Suite:
    path = _yaml_file("suite", name)
    return load_suite(path if path else registry.get("suite", name).obj)


def build_components(registry: Registry, spec: MethodSpec, overrides: dict[str, str],
                     real: bool = False) -> list[tuple[str, Any]]:
    """(role, instance) in execution order, with method-file params and CLI overrides; on real
    data the paper's settings fill the parameters neither sets (oodbench.standins)."""
    refs = spec.components()
    fields_of = {ref.name: set(registry.get(kind, ref.name).obj.param_fields())
                 for _, kind, ref in refs}
    per_component = split_overrides(spec, overrides, fields_of)
    out = []
    for role, kind, ref in refs:
        entry = registry.get(kind, ref.name)
        explicit = {**entry.defaults, **ref.params, **per_component[ref.name]}
        out.append((role, entry.obj.from_params(with_paper_settings(entry.obj, explicit, real))))
    return out


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
    # under accelerate launch / torchrun: each process on its own GPU; the main one writes
    processes = shards.processes(ctx.device)
    ctx = dataclasses.replace(ctx, device=processes.device(ctx.device))
    spec = resolve_method(registry, request.method)
    suite = resolve_suite(registry, request.suite)
    real = not is_offline(suite)
    components = build_components(registry, spec, request.params, real)
    suite_backbone = suite.backbone or "mini"
    backbone_name = request.backbone or spec.backbone_for(suite_backbone)
    backbone = registry.create("backbone", backbone_name, backbone_params(
        spec, suite, registry.get("backbone", backbone_name).obj, request.backbone_params))
    if not request.backbone and backbone_name != suite_backbone:  # said once it is known
        log(f"backbone: {backbone_name} (method {spec.name} runs on it in place of the "
            f"suite's {suite_backbone}; --backbone overrides)")

    # resolve every dataset before any expensive work: missing data fails in a second
    id_images = resolve_source(suite.id_test, suite.id_name, suite.classes)
    ood_images = {s.name: resolve_source(s.source, s.name, None) for s in suite.ood}
    # an OOD set sharing images (same content) with the ID set is nonsense: stop before scoring
    index = ContentIndex(ctx.cache_dir)
    for images in (id_images, *ood_images.values()):
        images.use_index(index)
    refuse_shared_images(suite.id_name, id_images, ood_images)

    with timer.stage("load_backbone"):
        backbone.load(ctx.device, ctx.dtype)
    store = FeatureStore(ArtifactCache(ctx.cache_dir), log=log)
    env = MethodEnv(ctx, backbone, backbone_name, suite, store, registry, log, progress)
    for _, component in components:  # models that cannot be loaded stop the run here
        component.preflight(env)

    with timer.stage("encode"):
        id_feats = env.encode(id_images, f"encode {suite.id_name} (ID)")
        ood_feats = {name: env.encode(images, f"encode {name}")
                     for name, images in ood_images.items()}
    count = generation_count(components, request.seeds, request.params, not real)
    outcomes = _generations(env, components, (id_images, id_feats),
                            {name: (ood_images[name], fs) for name, fs in ood_feats.items()},
                            timer, log, count)

    record = _record(request, ctx, registry, spec, suite, backbone_name, backbone, components,
                     id_feats, ood_feats, outcomes)
    timer.seconds["total"] = round(time.perf_counter() - start, 4)
    record["timings"] = timer.seconds
    record["cache"] = {"images_encoded": store.stats.images_encoded,
                       "texts_encoded": store.stats.texts_encoded,
                       "feature_cache_hits": store.stats.cache_hits,
                       "decode": ctx.decode,
                       "decoded_on_device": store.stats.decoded_on_device,
                       "decoded_with_pil": store.stats.decoded_with_pil}
    if store.stats.notes:  # e.g. why --decode gpu fell back to the CPU path
        record["notes"] = {**(record.get("notes") or {}), "features": list(store.stats.notes)}
    if request.output_dir is not None and processes.is_main:
        path = write_record(record, request.output_dir)
        record["path"] = str(path)
        _write_scores(path, outcomes, id_images, ood_images)
    return record


def _write_scores(record_path: Path, outcomes: list[Generation], id_images: ImageList,
                  ood_images: dict[str, ImageList]) -> None:
    """The per-image scores beside the record (``<stem>.scores.npz``, one row per generation):
    what the leaderboard's paired bootstrap compares two methods on."""
    from oodbench.significance import write_scores

    images = content_key("scored-images/1", id_images.fingerprint,
                         *(f"{name}={ood_images[name].fingerprint}" for name in ood_images))
    write_scores(record_path, np.stack([o.id_scores for o in outcomes]),
                 {name: np.stack([o.ood_scores[name] for o in outcomes]) for name in ood_images},
                 images=images)


@dataclass
class Generation:
    """One generation's scores; a generation whose labels repeat an earlier one shares them."""

    seed: int
    label_set: int  # index of its distinct label bank, in order of first appearance
    label_info: dict[str, Any]
    id_scores: np.ndarray
    predictions: np.ndarray
    ood_scores: dict[str, np.ndarray]
    notes: dict[str, Any]


def _generations(env: MethodEnv, components: list[tuple[str, Any]],
                 id_set: tuple[ImageList, FeatureSet],
                 ood_sets: dict[str, tuple[ImageList, FeatureSet]], timer: Timer,
                 log: Callable[[str], None], count: int) -> list[Generation]:
    """Run labels -> ... -> score once per generation (seeds: :mod:`oodbench.seeds`);
    repeated label banks reuse scores. Each evaluated set comes as (its images, features)."""
    outcomes: list[Generation] = []
    first_seen: dict[str, Generation] = {}  # label bank fingerprint -> its first generation
    for g in range(count):
        seed = env.ctx.seed + g
        genv = env if g == 0 else dataclasses.replace(
            env, ctx=dataclasses.replace(env.ctx, seed=seed), notes={})
        if count > 1:
            log(f"generation {g + 1}/{count} (seed {seed})")
        distinct = len({o.label_set for o in outcomes})
        with seeds_moved_on(components, g):
            outcome = _generation(genv, components, id_set, ood_sets, timer, log,
                                  first_seen if count > 1 else None, distinct)
        outcomes.append(outcome)
    return outcomes


def _generation(env: MethodEnv, components: list[tuple[str, Any]],
                id_set: tuple[ImageList, FeatureSet],
                ood_sets: dict[str, tuple[ImageList, FeatureSet]], timer: Timer,
                log: Callable[[str], None], first_seen: dict[str, Generation] | None,
                distinct: int) -> Generation:
    """One generation (``env`` carries its seed). ``first_seen`` (several generations) maps
    label banks to the generation that scored them; ``distinct``: score sets so far."""
    head, bank, label_info = _labels(env, components, timer)
    # equal labels give equal scores only when no component draws from a seed of its own
    fingerprint = (_bank_fingerprint(bank)
                   if first_seen is not None and not has_seed_parameter(components) else None)
    earlier = first_seen.get(fingerprint) if first_seen and fingerprint else None
    if earlier is not None:
        log(f"the same labels as seed {earlier.seed}; reusing its scores")
        return dataclasses.replace(earlier, seed=env.ctx.seed, label_info=label_info,
                                   notes=env.notes)
    head = _prepare(env, components, head, bank, timer)
    scorer = components[-1][1]
    with timer.stage("score"):
        head = head.to(env.ctx.device)
        id_scores, predictions = _score(env, scorer, head, *id_set)
        ood_scores = {name: _score(env, scorer, head, *pair)[0]
                      for name, pair in ood_sets.items()}
    outcome = Generation(env.ctx.seed, distinct, label_info, id_scores, predictions,
                         ood_scores, env.notes)
    if first_seen is not None and fingerprint is not None:
        first_seen[fingerprint] = outcome
    return outcome


def _bank_fingerprint(bank: LabelBank | None) -> str | None:
    """What the head is built from: the labels, their order and their prompt templates."""
    if bank is None:
        return None
    return content_key(list(bank.labels), [bank.prompts_for(i) for i in range(len(bank.labels))])


def _labels(env: MethodEnv, components: list[tuple[str, Any]], timer: Timer
            ) -> tuple[TextHead, LabelBank | None, dict[str, Any]]:
    """The ID head, with the label generator's bank added when the method has one."""
    with timer.stage("encode_text"):  # the ID class prompts (a label bank: under "labels")
        head = TextHead(env.id_text_features(), list(env.suite.classes))
    for role, component in components:
        if role == "label_generator":
            with timer.stage("labels"):
                labels = _returned(component, "generate", component.generate(env), LabelBank)
                head = head.replace(extra_features=env.label_features(labels),
                                    extra_labels=list(labels.labels))
            label_info = {"generator": labels.generator, "count": len(labels.labels),
                          "source": labels.source, "params": labels.params,
                          "meta": {k: v for k, v in labels.meta.items()
                                   if isinstance(v, str | int | float | bool)}}
            return head, labels, label_info
    return head, None, {}


def _prepare(env: MethodEnv, components: list[tuple[str, Any]], head: TextHead,
             labels: LabelBank | None, timer: Timer) -> TextHead:
    """Synthesize -> fine-tune -> scorer preparation, after the labels."""
    samples = None
    for role, component in components:
        if role == "synthesizer":
            with timer.stage("synthesize"):
                samples = _returned(component, "synthesize",
                                    component.synthesize(env, labels), SampleSet)
        elif role == "finetuner":
            # "finetune" sums every fine-tuner; each is also timed alone (SynOOD's two stages)
            with timer.stage("finetune"), timer.stage(f"finetune:{component.name}"):
                head = _returned(component, "finetune", component.finetune(env, head, samples),
                                 TextHead)
        elif role == "scorer":
            if component.needs_extra_labels and head.extra_features is None:
                raise OODBenchError(
                    f"Scorer {component.name!r} needs extra labels but the method has no label "
                    f"generator; add `label_generator:` to the method."
                )
            with timer.stage("prepare"):
                head = _returned(component, "prepare", component.prepare(env, head), TextHead)
    return head


def _returned(component: Any, method: str, value: Any, expected: type) -> Any:
    """``value`` if it is an ``expected``; else one line naming the component (not a traceback
    from deep inside the next stage)."""
    if not isinstance(value, expected):
        kind = {"finetuner": "Fine-tuner"}.get(component.kind,
                                                component.kind.replace("_", " ").capitalize())
        raise PluginError(
            f"{kind} {component.name!r} returned "
            f"{type(value).__name__} from {method}(), not a {expected.__name__}; its plugin must "
            f"return an oodbench.{expected.__name__} (see oodbench.contracts).")
    return value


def _score(env: MethodEnv, scorer: Any, head: TextHead, images: ImageList,
           fs: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """Score on the run's device (the GPU when there is one); scores come back to the host."""
    with torch.no_grad():
        feats = head.adapt(fs.features.to(env.device))
        scores = scorer.score_set(env, images, fs, feats, head)
        if isinstance(scores, torch.Tensor):
            scores = scores.detach().cpu()
        scores = np.asarray(scores, dtype=np.float64)
        predictions = (feats @ head.id_features.T).argmax(dim=1).cpu().numpy()
    if scores.shape != (len(fs),):
        raise OODBenchError(f"Scorer {scorer.name!r} returned shape {scores.shape} for "
                            f"{len(fs)} images; it must return one score per image.")
    return scores, predictions


def _record(request: RunRequest, ctx: RunContext, registry: Registry, spec: MethodSpec,
            suite: Suite, backbone_name: str, backbone: Any, components: list[tuple[str, Any]],
            id_feats: FeatureSet, ood_feats: dict[str, FeatureSet],
            outcomes: list[Generation]) -> dict[str, Any]:
    group_of = {s.name: s.group for s in suite.ood}
    # metrics per distinct label set (generations with repeated labels share them)
    evaluated: dict[int, tuple[dict[str, Any], dict[str, Any], float]] = {}
    for outcome in outcomes:
        if outcome.label_set not in evaluated:
            evaluated[outcome.label_set] = _evaluate(request, outcome, group_of, id_feats)
    per_set, groups, id_accuracy = evaluated[outcomes[0].label_set]
    generations = None
    if len(outcomes) > 1:
        runs = [evaluated[o.label_set] for o in outcomes]
        per_set, groups, id_accuracy, generations = generation_summary(
            [r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs],
            [o.seed for o in outcomes], [o.label_set for o in outcomes],
            [o.label_info.get("count") for o in outcomes])
    first = outcomes[0]
    plots = {name: curves(first.id_scores, scores) for name, scores in first.ood_scores.items()}
    offline = is_offline(suite)
    record = {
        "schema": "oodbench.result/1",
        "method": spec.name,
        "method_spec": spec.to_dict(),
        "params": {c.name: {"role": role, **c.params()} for role, c in components},
        "suite": {"name": suite.name, "version": suite.version, "hash": suite.hash,
                  "task": suite.task},
        "backbone": {"name": backbone_name, "params": backbone.params(),
                     "fingerprint": backbone.fingerprint(),
                     **preprocessing_record(backbone, spec, suite, request.backbone_params),
                     **_weights(backbone)},
        "source": "offline" if offline else "real",
        "metrics": per_set,
        "groups": groups,
        "id_accuracy": id_accuracy,
        "fpr_convention": request.fpr_convention,
        "labels": first.label_info or None,
        "notes": first.notes,
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
    if not offline:  # paper settings the run departs from (always present on real data)
        record["substitutions"] = substitutions(components)
    # -p overrides and --seeds, as given: they also name the record's file
    overrides = {**request.params, **({"--seeds": str(request.seeds)} if request.seeds else {})}
    if overrides:
        record["overrides"] = dict(sorted(overrides.items()))
    if generations is not None:
        record["generations"] = generations
    record["components"] = component_sources(registry, spec, backbone_name)
    return record


def component_sources(registry: Registry, spec: MethodSpec,
                      backbone_name: str) -> list[dict[str, str]]:
    """Which plugin (distribution, version) registered each component of the run."""
    versions = {(p.name, p.distribution): p.version for p in registry.plugins}
    used = [("backbone", "backbone", backbone_name),
            *((role, kind, ref.name) for role, kind, ref in spec.components())]
    out = []
    for role, kind, name in used:
        entry = registry.get(kind, name)
        out.append({"role": role, "name": name, "plugin": entry.plugin,
                    "distribution": entry.distribution,
                    "version": versions.get((entry.plugin, entry.distribution), "")})
    return out


def _weights(backbone: Any) -> dict[str, Any]:
    """``{"weights": identity}`` for a run with ``--weights``, else nothing (records as before)."""
    identity = getattr(backbone, "weights_identity", lambda: None)()
    return {"weights": identity} if identity else {}


def _evaluate(request: RunRequest, outcome: Generation, group_of: dict[str, str],
              id_feats: FeatureSet) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Per-set metrics (with bootstrap CIs if asked), group means and ID accuracy."""
    per_set: dict[str, Any] = {}
    members: dict[str, list[metrics.OODMetrics]] = {}
    for name, scores in outcome.ood_scores.items():
        m = metrics.ood_metrics(outcome.id_scores, scores, convention=request.fpr_convention)
        entry: dict[str, Any] = {"group": group_of[name], **m.as_dict()}
        if request.bootstrap:
            entry["ci"] = {k: list(v) for k, v in metrics.bootstrap_ci(
                outcome.id_scores, scores, request.bootstrap, seed=outcome.seed,
                convention=request.fpr_convention).items()}
        per_set[name] = entry
        members.setdefault(group_of[name], []).append(m)
    groups = {group: {**metrics.mean_metrics(members[group]), "sets": len(members[group])}
              for group in ("near", "far") if members.get(group)}
    return per_set, groups, metrics.id_accuracy(outcome.predictions, id_feats.labels)

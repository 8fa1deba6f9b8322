"""Run a plugin's scorers, label generators and fine-tuners on the toy backbone and a tiny
colour suite (:mod:`oodbench.testing.toy`), and say what is wrong with what they return."""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench.cache import ArtifactCache
from oodbench.data.sources import resolve_source
from oodbench.data.suite import load_suite
from oodbench.env import MethodEnv
from oodbench.errors import OODBenchError
from oodbench.features import FeatureStore
from oodbench.plugins import Registration, Registry
from oodbench.testing.check import Problem, label
from oodbench.testing.toy import ToyColourBackbone, write_toy_suite
from oodbench.types import LabelBank, RunContext, TextHead

# outlier labels of the probes' head: colours that are not the toy suite's ID classes
EXTRA_LABELS = ["yellow", "magenta", "cyan", "grey", "orange"]
SKIP_HINT = "or pass skip={name: 'why'} to check_plugin if it needs a model this machine lacks"


def toy_env(folder: Path, registry: Registry | None = None, seed: int = 0) -> MethodEnv:
    """A real :class:`~oodbench.MethodEnv` on the toy backbone and a tiny colour suite under
    ``folder`` (suite files and cache), on the CPU."""
    suite_file = folder / "colours.yaml"
    if not suite_file.exists():
        write_toy_suite(folder)
    backbone = ToyColourBackbone()
    ctx = RunContext(device=torch.device("cpu"), cache_dir=folder / "cache", seed=seed,
                     batch_size=1024, num_workers=0, offline=True)
    backbone.load(ctx.device, ctx.dtype)
    store = FeatureStore(ArtifactCache(ctx.cache_dir))
    return MethodEnv(ctx, backbone, "toy-colour", load_suite(suite_file), store, registry)


def run_probes(registrations: list[Registration], registry: Registry) -> list[Problem]:
    """Problems of every scorer, label generator and fine-tuner among ``registrations``."""
    probes: dict[str, Callable[[Registration, Path, Registry], list[Problem]]] = {
        "scorer": _scorer, "label_generator": _label_generator, "finetuner": _finetuner}
    problems = []
    with tempfile.TemporaryDirectory(prefix="oodbench-check-") as tmp:
        for i, reg in enumerate(r for r in registrations if r.kind in probes):
            folder = Path(tmp) / f"{i}"
            folder.mkdir()
            try:
                problems += probes[reg.kind](reg, folder, registry)
            except Exception as exc:
                problems.append(Problem(label(reg), f"raised {_where(exc)}",
                                        f"make it run on the toy backbone, {SKIP_HINT}"))
    return problems


def _where(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of the innermost frame."""
    text = " ".join(str(exc).split()) or "no message"
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {text}{at}"


def _preflight(component: Any, env: MethodEnv, reg: Registration) -> list[Problem]:
    try:
        component.preflight(env)
    except OODBenchError as exc:
        return [Problem(label(reg), f"cannot run here: {exc}",
                        f"make what it needs available, {SKIP_HINT}")]
    return []


def _head(env: MethodEnv, extra: bool) -> TextHead:
    head = TextHead(env.id_text_features(), list(env.suite.classes))
    if not extra:
        return head
    bank = LabelBank(list(EXTRA_LABELS), generator="oodbench.testing")
    return head.replace(extra_features=env.label_features(bank), extra_labels=list(bank.labels))


def _features(env: MethodEnv) -> torch.Tensor:
    """The toy suite's ID test and OOD image features, one row per image."""
    suite = env.suite
    sets = [resolve_source(suite.id_test, suite.id_name, suite.classes)]
    sets += [resolve_source(s.source, s.name, None) for s in suite.ood]
    return torch.cat([env.encode(images).features for images in sets])


def _scorer(reg: Registration, folder: Path, registry: Registry) -> list[Problem]:
    scorer = reg.create()
    env = toy_env(folder, registry)
    problems = _preflight(scorer, env, reg)
    if problems:
        return problems
    head = scorer.prepare(env, _head(env, True))
    if not isinstance(head, TextHead):
        return [Problem(label(reg), f"prepare returned {type(head).__name__}, not a TextHead",
                        "return the head (head.replace(...) for a changed one)")]
    feats = _features(env)
    with torch.no_grad():
        scores = scorer.score(head.adapt(feats), head)
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(feats),):
        return [Problem(label(reg), f"score returned shape {scores.shape} for {len(feats)} "
                        "images", "return one score per image (a [N] array)")]
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        return [Problem(label(reg), f"score returned {bad} non-finite score(s) of {len(feats)}",
                        "keep scores finite (log-sum-exp, clamp denominators)")]
    return []


def _label_generator(reg: Registration, folder: Path, registry: Registry) -> list[Problem]:
    first_dir, second_dir = folder / "a", folder / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    generator = reg.create()
    env = toy_env(first_dir, registry)
    problems = _preflight(generator, env, reg)
    generations = getattr(generator, "generations", 1)
    if not isinstance(generations, int) or isinstance(generations, bool) or generations < 1:
        problems.append(Problem(label(reg), f"generations is {generations!r}",
                                "make `generations` an integer >= 1"))
    if problems:
        return problems
    bank = generator.generate(env)
    problem = _bank_problem(bank, folder / "bank.json")
    if problem:
        return [Problem(label(reg), problem, "return LabelBank(labels=[...], generator=name)")]
    again = reg.create().generate(toy_env(second_dir, registry))  # fresh cache, same seed
    if (again.labels, again.groups) != (bank.labels, bank.groups):
        diff = next((f"{a!r} vs {b!r}" for a, b in zip(bank.labels, again.labels, strict=False)
                     if a != b), f"{len(bank.labels)} vs {len(again.labels)} labels")
        return [Problem(label(reg), f"two runs with seed 0 gave different banks ({diff})",
                        "draw randomness from env.rng(...) (seeded by the run seed)")]
    return []


def _bank_problem(bank: Any, path: Path) -> str:
    if not isinstance(bank, LabelBank):
        return f"generate returned {type(bank).__name__}, not a LabelBank"
    if not bank.labels:
        return "generate returned an empty label bank"
    if not all(isinstance(t, str) and t.strip() for t in bank.labels):
        return "its labels are not all non-empty strings"
    try:
        bank.save(path)
        LabelBank.load(path)
    except OODBenchError as exc:
        return f"its bank does not survive export/import: {exc}"
    return ""


def _finetuner(reg: Registration, folder: Path, registry: Registry) -> list[Problem]:
    tuner = reg.create()
    env = toy_env(folder, registry)
    problems = _preflight(tuner, env, reg)
    if problems:
        return problems
    head = tuner.finetune(env, _head(env, True), None)
    if not isinstance(head, TextHead):
        return [Problem(label(reg), f"finetune returned {type(head).__name__}, not a TextHead",
                        "return the head (head.replace(...) for a changed one)")]
    with torch.no_grad():
        adapted = head.adapt(_features(env))
    tensors = [head.id_features, adapted]
    if head.extra_features is not None:
        tensors.append(head.extra_features)
    if not all(torch.isfinite(t).all() for t in tensors):
        return [Problem(label(reg), "its head or adapted image features are not finite",
                        "keep features finite")]
    return []

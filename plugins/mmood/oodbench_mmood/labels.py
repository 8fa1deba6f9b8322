"""MM-OOD's outlier labels ("Vision Also You Need"): EOE's prompts with a multimodal LLM.

* broad categories of the ID set (an LLM, or the WordNet envisioner offline), cached;
* near branch: a seeded sample of ID *train* images (never evaluation images), each shown to
  the MLLM with EOE's near prompt extended by "and this image";
* far branch: sketch labels from the broad categories (text) -> pick R representatives ->
  render each with a diffusion model -> show each image to the MLLM with the ID context to
  elaborate labels, over rounds, until the budget L = 12 x K (the paper's; an explicit
  ``max_budget`` caps it; both recorded);
* unknown task type: the two branches' surviving labels mixed 0.5 : 0.5;
* EOE's cosine pre-filter on the final labels, where EOE's code applies it (near, ImageNet-20).
Open choices of the paper are parameters (see plugins/mmood/README.md).

Every random choice follows the run's seed (the runner gives generation g the seed + g): the
near branch's train images, the diffusion seeds, the LLM and the MLLM (when they sample). The
bank's cache key holds the seed; each piece's key holds exactly its own inputs, so a piece that
does not depend on the seed (broad categories from the WordNet envisioner, a greedy MLLM's
answer for an image already seen) is computed once for all generations.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from oodbench.cache import atomic_write, content_key
from oodbench.env import MethodEnv
from oodbench.interfaces import LabelGenerator
from oodbench.labels.bank import cached_bank
from oodbench.standins import check_backend
from oodbench.types import LabelBank
from oodbench_eoe import prompts as P
from oodbench_eoe.labels import (
    HiddenParams,
    SynonymFilter,
    apply_cosine_filter,
    check_generations,
    key_params,
    make_envisioner,
)

TASKS = ("far", "near", "fine-grained", "unknown")


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (0: unchanged), then restore them."""
    before = torch.get_num_threads()
    if count > 0 and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def farthest_point_sample(features: torch.Tensor, count: int) -> list[int]:
    """Indices of ``count`` mutually distant rows, starting from row 0 (deterministic)."""
    if count >= features.shape[0]:
        return list(range(features.shape[0]))
    chosen = [0]
    distance = 1 - features @ features[0]
    for _ in range(count - 1):
        nxt = int(torch.argmax(distance))
        chosen.append(nxt)
        distance = torch.minimum(distance, 1 - features @ features[nxt])
    return chosen


def mix_labels(near: list[str], far: list[str], ratio: float, rng: np.random.Generator
               ) -> list[str]:
    """Equal shares (ratio : 1 - ratio) of the two branches' labels: the larger is subsampled."""
    if not near or not far:
        return near or far
    total = min(len(near) / ratio if ratio > 0 else np.inf,
                len(far) / (1 - ratio) if ratio < 1 else np.inf)
    n_near, n_far = round(total * ratio), round(total * (1 - ratio))
    pick = lambda xs, n: [xs[i] for i in sorted(rng.choice(len(xs), n, replace=False))]  # noqa: E731
    return list(dict.fromkeys(pick(near, min(n_near, len(near))) +
                              pick(far, min(n_far, len(far)))))


@dataclasses.dataclass
class MMOODLabels(LabelGenerator):
    name = "mmood-labels"
    description = ("MM-OOD: MLLM outlier labels from ID train images (near) and generated "
                   "images (far).")
    llm: str = "knowledge"  # broad categories + far sketch: a text generator or "knowledge"
    describer: str = "vocabulary"  # the MLLM: transformers-mllm, qwen2-vl-7b, vocabulary
    # SD-1.5 for users: diffusers-txt2img; offline: mini-diffusion at 20 steps (plugin.py)
    image_generator: str = "mini-diffusion-fast"
    image_generator_params: dict = dataclasses.field(default_factory=dict)
    # torch CPU threads while rendering (0 = leave torch's setting). The offline mini UNet is
    # too small to gain from intra-op threads, and on a shared CPU the extra thread spins:
    # offline-far, 3 generations, 2-core box shared with other jobs: 765 s with 2, 125 s with 1
    render_threads: int = 1
    task: str = "auto"  # auto = the suite's task; unknown = mix both branches
    broad_count: int = 8  # M
    images_per_class: int = 1
    near_per_image: int = 3
    budget_per_class: int = 12  # L = 12 x K (the paper's; 12,000 on ImageNet-1K)
    max_budget: int = 0  # an explicit cap on L; 0 = none (the paper's budget); recorded
    representatives: int = 0  # R; 0 = min(50, max(1, L // 10))
    labels_per_image: int = 10
    max_rounds: int = 3
    mix_ratio: float = 0.5
    word_overlap_filter: bool = True
    cosine_filter: str = "auto"  # EOE's pre-filter: auto (near + ImageNet-20) | always | never
    cosine_threshold: float = P.COSINE_THRESHOLD
    generations: int = 3  # independent generations (seeds run seed + 0..N-1), mean ± std
    llm_params: dict = dataclasses.field(default_factory=dict)
    prompt_order: str = "auto"  # for an LLM `llm`: auto | fixed | seeded (see envision)
    seed: int = 0  # salt on top of the run seed
    template: str = "a photo of a {}"

    def __post_init__(self) -> None:
        check_generations(self.generations)
        P.cosine_filter_applies(self.cosine_filter, "far", "")  # checks the mode

    # on real data: the paper's kinds of model (an LLM, an MLLM, Stable Diffusion 1.5); the
    # WordNet envisioner, the vocabulary describer and mini-diffusion are offline stand-ins
    paper_settings: ClassVar[dict[str, Any]] = {
        "llm": "transformers-llm", "describer": "transformers-mllm",
        "image_generator": "diffusers-txt2img"}

    def preflight(self, env: MethodEnv) -> None:
        task = env.suite.task if self.task == "auto" else self.task
        check_backend(env, "image_describer", self.describer, {},
                      "-p label_generator.describer=vocabulary")
        if task in ("far", "unknown"):
            if self.llm != "knowledge":
                check_backend(env, "text_generator", self.llm, self.llm_params,
                              "-p label_generator.llm=knowledge")
            check_backend(env, "image_generator", self.image_generator,
                          self.image_generator_params,
                          "-p label_generator.image_generator=mini-diffusion-fast")

    def budget(self, n_classes: int) -> tuple[int, int]:
        """(requested, used) far budget: L = ``budget_per_class`` x K, then ``max_budget``."""
        requested = self.budget_per_class * n_classes
        return requested, (min(requested, self.max_budget) if self.max_budget > 0
                           else requested)

    def generate(self, env: MethodEnv) -> LabelBank:
        task = env.suite.task if self.task == "auto" else self.task
        # the run seed picks the near images and the diffusion noise: part of the bank's key
        key = env.key("labels", self.name, key_params(self.params()), task, P.prompts_hash(),
                      env.ctx.seed, self._models(env, task),
                      P.cosine_filter_applies(self.cosine_filter, task, env.suite.id_name))
        return cached_bank(env.cache, key, lambda: self._generate(env, task), env.log,
                           reuse=env.reuse("labels"))

    def _models(self, env: MethodEnv, task: str) -> list[str]:
        """Identities (weights included) of the models the task's branches use: new diffusion
        weights or another describer vocabulary must not reuse an old bank. Loads nothing."""
        models = [self._describer_component(env).identity()]
        if task in ("far", "unknown"):
            models += [self._envisioner(env).identity, self._generator(env).identity()]
        return models

    def _generator(self, env: MethodEnv) -> Any:
        return env.registry.create("image_generator", self.image_generator,
                                   self.image_generator_params)

    def _describer_component(self, env: MethodEnv) -> Any:
        return env.registry.create("image_describer", self.describer, {"seed": env.ctx.seed})

    def _envisioner(self, env: MethodEnv) -> Any:
        return make_envisioner(env, self.llm, self.llm_params, 50, 10, self.prompt_order)

    def _describer(self, env: MethodEnv) -> Any:
        describer = self._describer_component(env)
        describer.bind(env)
        return describer

    # -- pieces (each cached on its own, so changing one parameter reuses the rest) ----------
    def broad(self, env: MethodEnv) -> list[str]:
        envisioner = self._envisioner(env)
        key = env.key("mmood-broad", self.llm, envisioner.identity, self.broad_count,
                      P.prompts_hash())
        return env.cache.json_or_compute("mmood", key, lambda: envisioner.broad_categories(
            env, list(env.suite.classes), self.broad_count))

    def near_branch(self, env: MethodEnv) -> tuple[list[str], list[str]]:
        """Labels from ID train images; returns (labels, the image paths shown to the MLLM)."""
        train = env.id_train_images()
        rng = env.rng("mmood-near", self.seed)
        shown: list[int] = []
        for c in range(len(env.suite.classes)):
            members = np.nonzero(train.labels == c)[0]
            take = min(self.images_per_class, len(members))
            shown += sorted(rng.choice(members, take, replace=False).tolist()) if take else []
        describer = self._describer(env)
        prompts = [P.near_chat(env.suite.classes[train.labels[i]], self.near_per_image,
                               with_image=True)[-1]["content"] for i in shown]
        key = env.key("mmood-near", describer.identity(), [train.keys[i] for i in shown],
                      prompts)
        answers = env.cache.json_or_compute("mmood", key, lambda: describer.propose(
            [train.open(i) for i in shown], prompts))
        return [a for labels in answers for a in labels], [train.keys[i] for i in shown]

    def far_branch(self, env: MethodEnv, broad: list[str], budget: int) -> list[str]:
        envisioner = self._envisioner(env)
        ids = list(env.suite.classes)
        sketch = P.eoe_filter(envisioner.far(env, ids, broad, budget), ids)
        describer = self._describer(env)
        generator = self._generator(env)
        reps = self.representatives or min(50, max(1, budget // 10))
        found: list[str] = []
        pending = sketch
        for round_index in range(self.max_rounds):
            if not pending:
                break
            feats = env.text_features([self.template.format(x) for x in pending])
            chosen = [pending[i] for i in farthest_point_sample(feats, reps)]
            seeds = self.render_seeds(env, chosen, round_index)
            images = self.render(env, generator, chosen, seeds)
            prompt = P.elaborate_prompt(broad, self.labels_per_image)
            key = env.key("mmood-elaborate", describer.identity(), generator.identity(),
                          chosen, seeds, prompt)
            answers = env.cache.json_or_compute(
                "mmood", key, lambda ims=images, p=prompt: describer.propose(ims, [p] * len(ims)))
            new = P.eoe_filter([a for labels in answers for a in labels], ids)
            found = list(dict.fromkeys(found + new))
            if len(found) >= budget:
                break
            pending = [x for x in new if x not in chosen]
        return found[:budget] if found else sketch[:budget]

    def render_seeds(self, env: MethodEnv, labels: list[str], round_index: int) -> list[int]:
        """One diffusion seed per image, from the label, its slot and the run seed."""
        return [int(content_key(label, i, round_index, self.seed, env.ctx.seed)[:8], 16)
                for i, label in enumerate(labels)]

    def render(self, env: MethodEnv, generator: Any, labels: list[str],
               seeds: list[int]) -> list[Image.Image]:
        """Images of ``labels``, as files under the cache with a manifest (resumable).

        The missing images are rendered in chunks of the generator's ``batch_size`` (one image
        per call costs a full denoising loop per label on a CPU), and each chunk is written as
        soon as it is made: an interrupted synthesis keeps its finished chunks and a rerun
        renders only the images still missing. The chunks are the generator's own batches, so
        a fresh run computes exactly what one call for all images would.
        """
        folder = env.cache.root / "images" / "mmood" / content_key(generator.identity())[:16]
        prompts = [f"a photo of a {label}." for label in labels]
        paths = [folder / f"{content_key(p, s)[:24]}.png" for p, s in zip(prompts, seeds,
                                                                         strict=True)]
        todo = [i for i, path in enumerate(paths) if not path.exists()]
        if todo and getattr(generator, "loaded", True) is False:
            # onto the run's device (a diffusion model left to load itself picks the CPU);
            # only when something is missing, so a fully cached round needs no model
            generator.load(env.device)
        step = max(1, int(getattr(generator, "batch_size", 0) or len(todo) or 1))
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            with torch_threads(self.render_threads):
                made = generator.text_to_image([prompts[i] for i in chunk],
                                               [seeds[i] for i in chunk])
            for i, image in zip(chunk, made, strict=True):
                self._write_image(paths[i], image, {
                    "prompt": prompts[i], "seed": seeds[i], "label": labels[i],
                    "generator": generator.identity(), "params": generator.params()})
        images = []
        for path in paths:
            with Image.open(path) as img:
                images.append(img.convert("RGB"))
        return images

    @staticmethod
    def _write_image(path: Path, image: Image.Image, manifest: dict[str, Any]) -> None:
        """Manifest first, then the image: a present PNG always has its manifest beside it."""
        atomic_write(path.with_suffix(".json"),
                     lambda tmp: Path(tmp).write_text(json.dumps(manifest, default=str)))
        atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))

    def _generate(self, env: MethodEnv, task: str) -> LabelBank:
        ids = list(env.suite.classes)
        requested, budget = self.budget(len(ids))
        meta: dict[str, Any] = {"task": task, "budget_requested": requested, "budget": budget,
                                "max_budget": self.max_budget, "prompts_hash": P.prompts_hash()}
        near: list[str] = []
        far: list[str] = []
        if task in ("near", "fine-grained", "unknown"):
            raw, shown = self.near_branch(env)
            near = P.eoe_filter(raw, ids, near=True, word_overlap=self.word_overlap_filter)
            meta.update(near_images=len(shown), near_raw=len(raw), near_kept=len(near))
        if task in ("far", "unknown"):
            broad = self.broad(env)
            far = self.far_branch(env, broad, budget)
            meta.update(broad_categories=broad, far_kept=len(far))
        if task == "unknown":
            labels = mix_labels(near, far, self.mix_ratio, env.rng("mmood-mix", self.seed))
        else:
            labels = near or far
        # EOE's code pre-filters the final names just before scoring (near, ImageNet-20)
        labels = apply_cosine_filter(env, labels, ids, self.template, self.cosine_filter,
                                     self.cosine_threshold, task, meta)
        env.log(f"mmood-labels ({task}): {len(labels)} labels")
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source=f"{self.describer} + {self.image_generator} + {self.llm}",
                         templates=[self.template], meta=meta)


@dataclasses.dataclass
class MMOODBranch(HiddenParams, SynonymFilter, MMOODLabels):
    """``mmood-labels`` with one branch fixed, for other methods to reuse (``task`` is fixed).

    Adds what ``mmood-labels`` keeps out of the method's record: the opt-in synonym filter
    (after the branch's EOE filters) and ``describer_params`` (e.g. the vocabulary describer's
    ``vocabulary`` / ``phrase_with``).
    """

    branch: ClassVar[str] = ""
    describer_params: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_synonym_filter()
        self.task = self.branch

    def _describer_component(self, env: MethodEnv) -> Any:
        return env.registry.create("image_describer", self.describer,
                                   {"seed": env.ctx.seed, **self.describer_params})

    def _generate(self, env: MethodEnv, task: str) -> LabelBank:
        bank = super()._generate(env, task)
        labels = self.drop_synonyms(env, bank.labels, list(env.suite.classes), self.template,
                                    bank.meta)
        return dataclasses.replace(bank, labels=labels)


FAR_ONLY = frozenset({"llm", "llm_params", "prompt_order", "broad_count", "image_generator",
                      "image_generator_params", "render_threads", "budget_per_class",
                      "max_budget", "representatives", "labels_per_image", "max_rounds"})


@dataclasses.dataclass
class MMOODNear(MMOODBranch):
    name = "mmood-near"
    description = "MM-OOD near branch: MLLM labels from a seeded sample of ID train images."
    branch = "near"
    hidden = frozenset({"task", "mix_ratio"}) | FAR_ONLY


@dataclasses.dataclass
class MMOODFar(MMOODBranch):
    name = "mmood-far"
    description = ("MM-OOD far branch: broad categories -> sketch -> rendered images -> MLLM "
                   "labels.")
    branch = "far"
    hidden = frozenset({"task", "mix_ratio", "images_per_class", "near_per_image",
                        "word_overlap_filter"})

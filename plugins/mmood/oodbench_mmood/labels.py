"""MM-OOD's outlier labels ("Vision Also You Need"): EOE's prompts with a multimodal LLM.

* broad categories of the ID set (an LLM, or the WordNet envisioner offline), cached;
* near branch: a seeded sample of ID *train* images (never evaluation images), each shown to
  the MLLM with EOE's near prompt extended by "and this image";
* far branch: sketch labels from the broad categories (text) -> pick R representatives ->
  render each with a diffusion model -> show each image to the MLLM with the ID context to
  elaborate labels, over rounds, until the budget L = 12 x K (capped, recorded);
* unknown task type: the two branches' surviving labels mixed 0.5 : 0.5.
Open choices of the paper are parameters (see plugins/mmood/README.md).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from oodbench.cache import atomic_write, content_key
from oodbench.env import MethodEnv
from oodbench.generative import prompts as P
from oodbench.generative.labels import make_envisioner
from oodbench.interfaces import LabelGenerator
from oodbench.labels.bank import cached_bank
from oodbench.types import LabelBank

TASKS = ("far", "near", "fine-grained", "unknown")


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
    image_generator: str = "mini-diffusion"  # SD-1.5 for users: diffusers-txt2img
    task: str = "auto"  # auto = the suite's task; unknown = mix both branches
    broad_count: int = 8  # M
    images_per_class: int = 1
    near_per_image: int = 3
    budget_per_class: int = 12  # L = 12 x K
    max_budget: int = 1000  # cap on L (ImageNet-1K would ask 12,000); the cap is recorded
    representatives: int = 0  # R; 0 = min(50, max(1, L // 10))
    labels_per_image: int = 10
    max_rounds: int = 3
    mix_ratio: float = 0.5
    word_overlap_filter: bool = True
    seed: int = 0
    template: str = "a photo of a {}"

    def generate(self, env: MethodEnv) -> LabelBank:
        task = env.suite.task if self.task == "auto" else self.task
        key = env.key("labels", self.name, self.params(), task, P.prompts_hash())
        return cached_bank(env.cache, key, lambda: self._generate(env, task), env.log,
                           reuse=env.reuse("labels"))

    # -- pieces (each cached on its own, so changing one parameter reuses the rest) ----------
    def broad(self, env: MethodEnv) -> list[str]:
        envisioner = make_envisioner(env, self.llm, {}, 50, 10)
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
        describer = env.registry.create("image_describer", self.describer)
        describer.bind(env)
        prompts = [P.near_chat(env.suite.classes[train.labels[i]], self.near_per_image,
                               with_image=True)[-1]["content"] for i in shown]
        key = env.key("mmood-near", describer.identity(), [train.keys[i] for i in shown],
                      prompts)
        answers = env.cache.json_or_compute("mmood", key, lambda: describer.propose(
            [train.open(i) for i in shown], prompts))
        return [a for labels in answers for a in labels], [train.keys[i] for i in shown]

    def far_branch(self, env: MethodEnv, broad: list[str], budget: int) -> list[str]:
        envisioner = make_envisioner(env, self.llm, {}, 50, 10)
        ids = list(env.suite.classes)
        sketch = P.eoe_filter(envisioner.far(env, ids, broad, budget), ids)
        describer = env.registry.create("image_describer", self.describer)
        describer.bind(env)
        generator = env.registry.create("image_generator", self.image_generator)
        reps = self.representatives or min(50, max(1, budget // 10))
        found: list[str] = []
        pending = sketch
        for round_index in range(self.max_rounds):
            if not pending:
                break
            feats = env.text_features([self.template.format(x) for x in pending])
            chosen = [pending[i] for i in farthest_point_sample(feats, reps)]
            images = self.render(env, generator, chosen, round_index)
            prompt = P.elaborate_prompt(broad, self.labels_per_image)
            key = env.key("mmood-elaborate", describer.identity(), generator.identity(),
                          chosen, prompt, round_index)
            answers = env.cache.json_or_compute(
                "mmood", key, lambda ims=images, p=prompt: describer.propose(ims, [p] * len(ims)))
            new = P.eoe_filter([a for labels in answers for a in labels], ids)
            found = list(dict.fromkeys(found + new))
            if len(found) >= budget:
                break
            pending = [x for x in new if x not in chosen]
        return found[:budget] if found else sketch[:budget]

    def render(self, env: MethodEnv, generator: Any, labels: list[str],
               round_index: int) -> list[Image.Image]:
        """Images of ``labels``, as files under the cache with a manifest (resumable)."""
        folder = env.cache.root / "images" / "mmood" / content_key(generator.identity())[:16]
        images = []
        for i, label in enumerate(labels):
            prompt = f"a photo of a {label}."
            seed = int(content_key(label, i, round_index, self.seed)[:8], 16)
            path = folder / f"{content_key(prompt, seed)[:24]}.png"
            if not path.exists():
                image = generator.text_to_image([prompt], [seed])[0]
                atomic_write(path, lambda tmp, im=image: im.save(tmp, format="PNG"))
                manifest = {"prompt": prompt, "seed": seed, "generator": generator.identity()}
                atomic_write(path.with_suffix(".json"),
                             lambda tmp, m=manifest: Path(tmp).write_text(json.dumps(m)))
            with Image.open(path) as img:
                images.append(img.convert("RGB"))
        return images

    def _generate(self, env: MethodEnv, task: str) -> LabelBank:
        ids = list(env.suite.classes)
        requested = self.budget_per_class * len(ids)
        budget = min(requested, self.max_budget)
        meta: dict[str, Any] = {"task": task, "budget_requested": requested, "budget": budget,
                                "prompts_hash": P.prompts_hash()}
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
        env.log(f"mmood-labels ({task}): {len(labels)} labels")
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source=f"{self.describer} + {self.image_generator} + {self.llm}",
                         templates=[self.template], meta=meta)

"""The ``envision`` label generator: EOE-style outlier labels from an envisioner."""

from __future__ import annotations

import dataclasses
from typing import Any

from oodbench.env import MethodEnv
from oodbench.errors import ParameterError
from oodbench.generative import prompts as P
from oodbench.generative.envision import KnowledgeEnvisioner, LLMEnvisioner
from oodbench.interfaces import LabelGenerator
from oodbench.labels.bank import cached_bank
from oodbench.types import LabelBank

TASKS = ("far", "near", "fine-grained")


def make_envisioner(env: MethodEnv, name: str, llm_params: dict[str, Any], per_turn: int,
                    max_turns: int) -> KnowledgeEnvisioner | LLMEnvisioner:
    if name == "knowledge":
        return KnowledgeEnvisioner()
    generator = env.registry.create("text_generator", name, llm_params)
    return LLMEnvisioner(generator, per_turn=per_turn, max_turns=max_turns)


def resolve_task(env: MethodEnv, task: str) -> str:
    task = env.suite.task if task == "auto" else task
    if task not in TASKS:
        raise ParameterError(f"task must be auto or one of {', '.join(TASKS)}, got {task!r}.")
    return task


@dataclasses.dataclass
class EnvisionLabels(LabelGenerator):
    """EOE (Cao et al., ICML'24): envisioned outlier class names, filtered as EOE does.

    far: broad categories, then ``far_labels`` names requested ``per_turn`` at a time;
    near: ``near_per_class`` names per ID class (EOE's word-overlap filter on by default);
    fine-grained: other kinds of ``fine_kind`` not in the dataset.
    """

    name = "envision"
    description = "EOE-style envisioned outlier labels from an LLM or the WordNet envisioner."
    envisioner: str = "knowledge"  # or a registered text generator (transformers-llm, ...)
    task: str = "auto"  # auto = the suite's task
    far_labels: int = 500
    per_turn: int = 50
    max_turns: int = 10
    near_per_class: int = 3
    fine_kind: str = ""  # e.g. "food"; default: the ID classes' first broad category
    broad_count: int = 8
    word_overlap_filter: bool = True
    generation: int = 0  # index of an independent generation (EOE averages three)
    template: str = "a photo of a {}"
    llm_params: dict = dataclasses.field(default_factory=dict)

    def generate(self, env: MethodEnv) -> LabelBank:
        envisioner = make_envisioner(env, self.envisioner, self.llm_params, self.per_turn,
                                     self.max_turns)
        key = env.key("labels", self.name, self.params(), envisioner.identity, P.prompts_hash())
        return cached_bank(env.cache, key, lambda: self._envision(env, envisioner), env.log,
                           reuse=env.reuse("labels"))

    def _envision(self, env: MethodEnv, envisioner: Any) -> LabelBank:
        task = resolve_task(env, self.task)
        ids = list(env.suite.classes)
        meta: dict[str, Any] = {"task": task, "envisioner": envisioner.identity,
                                "prompt_version": P.PROMPT_VERSION,
                                "prompts_hash": P.prompts_hash()}
        if task == "far":
            broad = envisioner.broad_categories(env, ids, self.broad_count)
            raw = envisioner.far(env, ids, broad, self.far_labels)
            labels = P.eoe_filter(raw, ids)
            meta["broad_categories"] = broad
        elif task == "near":
            per_class = envisioner.near(env, ids, self.near_per_class)
            raw = [label for labels in per_class for label in labels]
            labels = P.eoe_filter(raw, ids, near=True, word_overlap=self.word_overlap_filter)
        else:
            kind = self.fine_kind or (envisioner.broad_categories(env, ids, 1) or ["object"])[0]
            raw = envisioner.fine_grained(env, ids, kind, self.far_labels)
            labels = P.eoe_filter(raw, ids)
            meta["fine_kind"] = kind
        meta.update(requested=len(raw), kept=len(labels), transcript=envisioner.transcript)
        env.log(f"envision ({envisioner.identity}, {task}): {len(raw)} proposed, "
                f"{len(labels)} kept after EOE's filters")
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source=envisioner.identity, templates=[self.template], meta=meta)

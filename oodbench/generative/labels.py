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
PROMPT_ORDERS = ("auto", "fixed", "seeded")


def make_envisioner(env: MethodEnv, name: str, llm_params: dict[str, Any], per_turn: int,
                    max_turns: int, prompt_order: str = "fixed"
                    ) -> KnowledgeEnvisioner | LLMEnvisioner:
    """The WordNet envisioner, or an LLM one whose generator gets the run's seed.

    ``prompt_order``: ``fixed`` lists names and examples as given; ``seeded`` in an order drawn
    from the run's seed; ``auto`` = seeded only when the LLM answers deterministically (greedy
    local model), so that independent generations (seeds) give different answers.
    """
    if prompt_order not in PROMPT_ORDERS:
        raise ParameterError(f"prompt_order must be one of {', '.join(PROMPT_ORDERS)}, got "
                             f"{prompt_order!r}.")
    if name == "knowledge":
        return KnowledgeEnvisioner()
    generator = env.registry.create("text_generator", name,
                                    {"seed": env.ctx.seed, **llm_params})
    seeded = prompt_order == "seeded" or (prompt_order == "auto" and not generator.uses_seed())
    return LLMEnvisioner(generator, per_turn=per_turn, max_turns=max_turns,
                         order_seed=env.ctx.seed if seeded else None)


def key_params(params: dict[str, Any]) -> dict[str, Any]:
    """A label generator's parameters that shape one bank (``generations`` only repeats it)."""
    return {k: v for k, v in params.items() if k != "generations"}


def check_generations(value: int) -> None:
    if value < 1:
        raise ValueError(f"generations must be at least 1, got {value}")


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

    ``generations``: independent generations the runner averages (EOE reports the mean ± std
    of 3), each with the run seed + g. The WordNet envisioner is deterministic: its generations
    share one cached bank and the runner scores it once. LLM envisioners get the seed (see
    ``make_envisioner``), so their generations differ.
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
    generations: int = 3  # independent generations, seeds = run seed + 0..N-1 (EOE: 3)
    prompt_order: str = "auto"  # auto | fixed | seeded (see make_envisioner)
    template: str = "a photo of a {}"
    llm_params: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_generations(self.generations)

    def generate(self, env: MethodEnv) -> LabelBank:
        envisioner = make_envisioner(env, self.envisioner, self.llm_params, self.per_turn,
                                     self.max_turns, self.prompt_order)
        # the envisioner's identity carries the seed exactly when its answers depend on it
        key = env.key("labels", self.name, key_params(self.params()), envisioner.identity,
                      P.prompts_hash())
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
        if isinstance(envisioner, LLMEnvisioner):  # provenance only: labels are unchanged
            meta.update(envisioner.provenance())
        env.log(f"envision ({envisioner.identity}, {task}): {len(raw)} proposed, "
                f"{len(labels)} kept after EOE's filters")
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source=envisioner.identity, templates=[self.template], meta=meta)

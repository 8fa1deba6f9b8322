"""The ``envision`` label generator (EOE-style outlier labels from an envisioner), its
fixed-family variants (``envision-broad/far/near/fine``) and the pieces MM-OOD reuses
(``make_envisioner``, ``apply_cosine_filter``, the ``HiddenParams`` / ``SynonymFilter`` mixins).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from oodbench.env import MethodEnv
from oodbench.errors import ParameterError
from oodbench.interfaces import LabelGenerator
from oodbench.labels.bank import cached_bank
from oodbench.labels.synonyms import (
    SYNONYM_FILTERS,
    drop_embedding_near,
    drop_wordnet_synonyms,
)
from oodbench.standins import check_backend
from oodbench.types import LabelBank
from oodbench_eoe import prompts as P
from oodbench_eoe.envision import KnowledgeEnvisioner, LLMEnvisioner

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


def apply_cosine_filter(env: MethodEnv, labels: list[str], ids: list[str], template: str,
                        mode: str, threshold: float, task: str, meta: dict[str, Any]
                        ) -> list[str]:
    """EOE's cosine pre-filter: drop labels with cosine > ``threshold`` to an ID name.

    Both sides are embedded with ``template`` (EOE: "a photo of a {c}", the scoring template).
    ``mode`` auto applies it where EOE's code does (near prompts, ImageNet-20 as ID). The bank
    records the mode, the threshold, whether it ran, how many labels it dropped and which.
    """
    applied = P.cosine_filter_applies(mode, task, env.suite.id_name)
    dropped: list[str] = []
    if applied and labels:
        feats = env.text_features([template.format(x) for x in labels])
        id_feats = env.text_features([template.format(c) for c in ids])
        labels, dropped = drop_embedding_near(labels, feats, id_feats, threshold)
    meta.update(cosine_filter=mode, cosine_threshold=threshold, cosine_filter_applied=applied,
                cosine_dropped=len(dropped), cosine_drops=dropped)
    if applied:
        env.log(f"cosine pre-filter (> {threshold:g} to an ID name): {len(dropped)} dropped")
    return labels


def fine_grained_kind(env: MethodEnv, kind: str, envisioner: Any, ids: list[str],
                      meta: dict[str, Any]) -> str:
    """The type word of EOE's fine-grained prompt: the parameter, else the suite's
    ``class_type`` (EOE fixes one per dataset: bird, car, food, pet), else the ID classes'
    first broad category (for a suite without one)."""
    if kind:
        source = "parameter"
    elif env.suite.class_type:
        kind, source = env.suite.class_type, "suite"
    else:
        kind = (envisioner.broad_categories(env, ids, 1) or ["object"])[0]
        source = "broad-category"
    meta.update(fine_kind=kind, fine_kind_source=source)
    return kind


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
    fine-grained: other kinds of ``fine_kind`` not in the dataset (default: the suite's
    ``class_type``, as EOE's fixed type per dataset; else the first broad category).
    ``cosine_filter`` / ``cosine_threshold``: EOE's cosine pre-filter (see
    ``apply_cosine_filter``); ``auto`` runs it only where EOE's code does.

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
    fine_kind: str = ""  # e.g. "food"; default: the suite's class_type, else the first
    # broad category of the ID classes
    broad_count: int = 8
    word_overlap_filter: bool = True
    cosine_filter: str = "auto"  # auto (EOE: near + ImageNet-20 only) | always | never
    cosine_threshold: float = P.COSINE_THRESHOLD  # drop a label with cosine > this to an ID
    generations: int = 3  # independent generations, seeds = run seed + 0..N-1 (EOE: 3)
    prompt_order: str = "auto"  # auto | fixed | seeded (see make_envisioner)
    template: str = "a photo of a {}"
    llm_params: dict = dataclasses.field(default_factory=dict)

    # on real data an LLM envisions (EOE used GPT-3.5-turbo: give it with
    # envisioner=openai-endpoint); the WordNet envisioner is the offline stand-in
    paper_settings: ClassVar[dict[str, Any]] = {"envisioner": "transformers-llm"}

    def __post_init__(self) -> None:
        check_generations(self.generations)
        P.cosine_filter_applies(self.cosine_filter, "far", "")  # checks the mode

    def preflight(self, env: MethodEnv) -> None:
        if self.envisioner != "knowledge":
            check_backend(env, "text_generator", self.envisioner, self.llm_params,
                          "-p label_generator.envisioner=knowledge")

    def generate(self, env: MethodEnv) -> LabelBank:
        envisioner = make_envisioner(env, self.envisioner, self.llm_params, self.per_turn,
                                     self.max_turns, self.prompt_order)
        # the envisioner's identity carries the seed exactly when its answers depend on it;
        # what the suite decides beyond its classes (task, class type, whether EOE's cosine
        # pre-filter runs) is part of the key too
        task = self._task(env)
        suite_side = [task, env.suite.class_type if task == "fine-grained" else "",
                      P.cosine_filter_applies(self.cosine_filter, task, env.suite.id_name)]
        key = env.key("labels", self.name, key_params(self.params()), envisioner.identity,
                      P.prompts_hash(), suite_side)
        return cached_bank(env.cache, key, lambda: self._envision(env, envisioner), env.log,
                           reuse=env.reuse("labels"))

    def _task(self, env: MethodEnv) -> str:
        return resolve_task(env, self.task)

    def _envision(self, env: MethodEnv, envisioner: Any) -> LabelBank:
        task = self._task(env)
        ids = list(env.suite.classes)
        meta: dict[str, Any] = {"task": task, "envisioner": envisioner.identity,
                                "prompt_version": P.PROMPT_VERSION,
                                "prompts_hash": P.prompts_hash()}
        raw, labels = self._propose(env, envisioner, task, ids, meta)
        if task != "broad":  # EOE's pre-filter, after its other filters (as in its code)
            labels = apply_cosine_filter(env, labels, ids, self.template, self.cosine_filter,
                                         self.cosine_threshold, task, meta)
        labels = self._refine(env, labels, ids, meta)
        meta.update(requested=len(raw), kept=len(labels), transcript=envisioner.transcript)
        if isinstance(envisioner, LLMEnvisioner):  # provenance only: labels are unchanged
            meta.update(envisioner.provenance())
        env.log(f"envision ({envisioner.identity}, {task}): {len(raw)} proposed, "
                f"{len(labels)} kept after EOE's filters")
        return LabelBank(labels=labels, generator=self.name, params=self.params(),
                         source=envisioner.identity, templates=[self.template], meta=meta)

    def _propose(self, env: MethodEnv, envisioner: Any, task: str, ids: list[str],
                 meta: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(raw answers, labels after EOE's filters) of one prompt family."""
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
            kind = fine_grained_kind(env, self.fine_kind, envisioner, ids, meta)
            raw = envisioner.fine_grained(env, ids, kind, self.far_labels)
            labels = P.eoe_filter(raw, ids)
        return raw, labels

    def _refine(self, env: MethodEnv, labels: list[str], ids: list[str],
                meta: dict[str, Any]) -> list[str]:
        """Filters after EOE's; none here (the family generators add the synonym filter)."""
        return labels


class HiddenParams:
    """Mixin: ``hidden`` dataclass fields keep their defaults and are not parameters.

    A family generator fixes ``task`` and drops what its family never reads, so its listing,
    its records and its cache key hold only what shapes its labels.
    """

    hidden: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def param_fields(cls) -> dict[str, Any]:
        fields = super().param_fields()  # type: ignore[misc]
        return {k: v for k, v in fields.items() if k not in cls.hidden}


@dataclasses.dataclass
class SynonymFilter:
    """Mixin: the opt-in filter of labels naming an ID class otherwise (labels/synonyms.py).

    Off by default. ``wordnet`` runs before ``embedding`` (``both``); the bank's meta records
    how many labels each filter dropped (``synonyms_dropped_wordnet`` / ``_embedding``) and
    which (``synonym_drops``).
    """

    synonym_filter: str = "none"  # none | wordnet | embedding | both
    synonym_threshold: float = 0.95  # embedding: drop a label with cosine > this to an ID class

    def check_synonym_filter(self) -> None:
        if self.synonym_filter not in SYNONYM_FILTERS:
            raise ValueError(f"synonym_filter must be one of {', '.join(SYNONYM_FILTERS)}, "
                             f"got {self.synonym_filter!r}")

    def drop_synonyms(self, env: MethodEnv, labels: list[str], ids: list[str], template: str,
                      meta: dict[str, Any]) -> list[str]:
        if self.synonym_filter == "none":
            return labels
        drops: dict[str, list[str]] = {}
        if self.synonym_filter in ("wordnet", "both"):
            labels, drops["wordnet"] = drop_wordnet_synonyms(labels, ids)
        if self.synonym_filter in ("embedding", "both"):
            drops["embedding"] = []
            if labels:  # the text encoder sees the labels as the scorer will
                feats = env.text_features([template.format(x) for x in labels])
                id_feats = env.text_features([template.format(c) for c in ids])
                labels, drops["embedding"] = drop_embedding_near(labels, feats, id_feats,
                                                                 self.synonym_threshold)
        # scalar counts reach the result record (it keeps scalars); the bank keeps the labels
        counts = {f"synonyms_dropped_{k}": len(v) for k, v in drops.items()}
        meta.update(counts, synonym_drops=drops)
        env.log(f"synonym filter ({self.synonym_filter}): {counts}")
        return labels


@dataclasses.dataclass
class FamilyLabels(HiddenParams, EnvisionLabels):
    """``envision`` with its prompt family fixed (``task`` is not a parameter)."""

    family: ClassVar[str] = ""
    hidden = frozenset({"task"})

    def _task(self, env: MethodEnv) -> str:
        return self.family


@dataclasses.dataclass
class EnvisionBroad(FamilyLabels):
    """The broad categories of the ID classes as a bank (MM-OOD's far sketch starts here)."""

    name = "envision-broad"
    description = "Broad categories of the ID classes (EOE/MM-OOD), from an LLM or WordNet."
    family = "broad"
    hidden = FamilyLabels.hidden | {"far_labels", "per_turn", "max_turns", "near_per_class",
                                    "fine_kind", "word_overlap_filter", "cosine_filter",
                                    "cosine_threshold"}

    def _propose(self, env: MethodEnv, envisioner: Any, task: str, ids: list[str],
                 meta: dict[str, Any]) -> tuple[list[str], list[str]]:
        broad = envisioner.broad_categories(env, ids, self.broad_count)
        return broad, broad  # the envisioner's answer as is: superclasses, not ID names


@dataclasses.dataclass
class FilteredFamilyLabels(SynonymFilter, FamilyLabels):
    """A fixed family plus the opt-in synonym filter after EOE's filters."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_synonym_filter()

    def _refine(self, env: MethodEnv, labels: list[str], ids: list[str],
                meta: dict[str, Any]) -> list[str]:
        return self.drop_synonyms(env, labels, ids, self.template, meta)


@dataclasses.dataclass
class EnvisionFar(FilteredFamilyLabels):
    name = "envision-far"
    description = "EOE far family: broad categories, then look-alike unrelated classes."
    family = "far"
    hidden = FamilyLabels.hidden | {"near_per_class", "fine_kind", "word_overlap_filter"}


@dataclasses.dataclass
class EnvisionNear(FilteredFamilyLabels):
    name = "envision-near"
    description = "EOE near family: per ID class, similar classes from other domains."
    family = "near"
    hidden = FamilyLabels.hidden | {"far_labels", "per_turn", "max_turns", "fine_kind",
                                    "broad_count"}


@dataclasses.dataclass
class EnvisionFine(FilteredFamilyLabels):
    name = "envision-fine"
    description = "EOE fine-grained family: other kinds of the ID classes' kind."
    family = "fine-grained"
    hidden = FamilyLabels.hidden | {"near_per_class", "word_overlap_filter", "broad_count"}


FAMILY_GENERATORS = (EnvisionBroad, EnvisionFar, EnvisionNear, EnvisionFine)

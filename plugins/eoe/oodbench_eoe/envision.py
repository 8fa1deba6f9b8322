"""Envisioners answer EOE's three requests (far, near, fine-grained) plus broad categories.

* :class:`LLMEnvisioner` asks a text LLM with the prompt families of
  :mod:`oodbench_eoe.prompts`. With ``order_seed`` set it lists the ID names (far,
  fine-grained) and the near few-shot examples in an order drawn from that seed: a greedy
  model then answers each independent generation differently without sampling.
* :class:`KnowledgeEnvisioner` answers the same requests from WordNet, ranked with the
  backbone's text encoder: deterministic, seconds, no model download. It is what CI and the
  offline default use, and records say so (``envisioner: knowledge``): its labels are not an
  LLM's and are never reported as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from oodbench.cache import content_key
from oodbench.generative import TextGenerator
from oodbench.generative.nouns import concrete_nouns
from oodbench.generative.parsing import parse_list_answer
from oodbench.labels import wordnet
from oodbench_eoe import prompts as P

if TYPE_CHECKING:
    from oodbench.env import MethodEnv

T = TypeVar("T")


@dataclass
class LLMEnvisioner:
    generator: TextGenerator
    per_turn: int = 50
    max_turns: int = 10
    order_seed: int | None = None  # None: names and examples in their given order
    transcript: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identity(self) -> str:
        order = "" if self.order_seed is None else f":order-seed={self.order_seed}"
        return self.generator.identity() + order

    def provenance(self) -> dict[str, Any]:
        """Who answered, for the label bank's meta: backend, model (id or path), seeds.

        The seed is recorded even when a greedy model ignores it (``llm_seed_used``), so a bank
        says which generation produced it; the prompts and raw answers are in ``transcript``.
        """
        generator = self.generator
        out: dict[str, Any] = {"llm_backend": generator.name,
                               "llm_model": str(getattr(generator, "model", "")),
                               "llm_seed": generator.seed,
                               "llm_seed_used": generator.uses_seed()}
        if getattr(generator, "gguf_file", ""):
            out["llm_gguf_file"] = generator.gguf_file
        if self.order_seed is not None:
            out["order_seed"] = self.order_seed
        return out

    def _order(self, items: Sequence[T], kind: str) -> list[T]:
        """``items`` as given, or permuted by ``order_seed`` (per request kind)."""
        if self.order_seed is None:
            return list(items)
        rng = np.random.default_rng(int(content_key(self.order_seed, kind)[:12], 16))
        return [items[i] for i in rng.permutation(len(items))]

    def _ask(self, chats: list[P.Chat], kind: str) -> list[str]:
        answers = self.generator.generate(chats)
        self.transcript += [{"kind": kind, "prompt": c[-1]["content"], "answer": a}
                            for c, a in zip(chats, answers, strict=True)]
        return answers

    def broad_categories(self, env: MethodEnv, id_names: Sequence[str], m: int) -> list[str]:
        names = self._order(id_names, "broad")
        answer = self._ask([[{"role": "user", "content": P.broad_prompt(names, m)}]],
                           "broad")[0]
        return parse_list_answer(answer)[:m]

    def _multi_turn(self, first: str, more: str, count: int, kind: str) -> list[str]:
        chat: P.Chat = [{"role": "user", "content": first}]
        found: list[str] = []
        for _ in range(self.max_turns):
            answer = self._ask([chat], kind)[0]
            found += parse_list_answer(answer)
            if len(dict.fromkeys(found)) >= count:
                break
            chat = [*chat, {"role": "assistant", "content": answer},
                    {"role": "user", "content": more}]
        return found

    def far(self, env: MethodEnv, id_names: Sequence[str], broad: Sequence[str],
            count: int) -> list[str]:
        n = min(self.per_turn, count)
        names = self._order(id_names, "far")
        return self._multi_turn(P.far_prompt(names, n), P.far_more_prompt(n), count, "far")

    def near(self, env: MethodEnv, id_names: Sequence[str], count: int) -> list[list[str]]:
        examples = self._order(P.NEAR_EXAMPLES, "near")
        answers = self._ask([P.near_chat(name, count, examples=examples) for name in id_names],
                            "near")
        return [parse_list_answer(a) for a in answers]

    def fine_grained(self, env: MethodEnv, id_names: Sequence[str], kind: str,
                     count: int) -> list[str]:
        n = min(self.per_turn, count)
        names = self._order(id_names, "fine-grained")
        return self._multi_turn(P.fine_prompt(names, kind, n), P.fine_more_prompt(kind, n),
                                count, "fine-grained")


@dataclass
class KnowledgeEnvisioner:
    """WordNet's answer to each request, ranked by text similarity with the run's backbone."""

    template: str = "a photo of a {}"
    min_depth: int = 4  # broad categories deeper than "entity > physical entity > object > ..."
    transcript: list[dict[str, Any]] = field(default_factory=list)

    identity = "knowledge:wordnet-3.0"  # deterministic: the same answers for every seed


    def _embed(self, env: MethodEnv, names: Sequence[str]) -> torch.Tensor:
        return env.text_features([self.template.format(n) for n in names])

    def _synsets(self, id_names: Sequence[str]) -> list[wordnet.Synset]:
        found = [wordnet.first_noun_sense(n) for n in id_names]
        return [s for s in found if s is not None]

    def broad_categories(self, env: MethodEnv, id_names: Sequence[str], m: int) -> list[str]:
        """Greedy cover of the ID classes by their deepest shared hypernyms."""
        cover: dict[int, set[int]] = {}
        depth: dict[int, int] = {}
        for i, synset in enumerate(self._synsets(id_names)):
            for node, d in wordnet.ancestors(synset.offset).items():
                if d >= self.min_depth:
                    cover.setdefault(node, set()).add(i)
                    depth[node] = d
        chosen: list[int] = []
        left = set().union(*cover.values()) if cover else set()
        while left and len(chosen) < m:
            best = max(cover, key=lambda n: (len(cover[n] & left), depth[n], -n))
            if not cover[best] & left:
                break
            chosen.append(best)
            left -= cover[best]
        nouns = wordnet.load_synsets()["n"]
        return [nouns[n].words[0] for n in chosen]

    def far(self, env: MethodEnv, id_names: Sequence[str], broad: Sequence[str],
            count: int) -> list[str]:
        """Nouns outside the broad categories' branches, most similar to those categories."""
        banned = {s.offset for s in self._synsets(broad)} | {s.offset for s in
                                                              self._synsets(id_names)}
        pool = [(w, o) for w, o in concrete_nouns()
                if not banned & set(wordnet.ancestors(o))]
        return self._rank(env, pool, list(broad) or list(id_names), count, reduce="max")

    def near(self, env: MethodEnv, id_names: Sequence[str], count: int) -> list[list[str]]:
        """Per class: nouns from other branches (not under its grandparent), most similar."""
        pool = concrete_nouns()
        out = []
        for name in id_names:
            synset = wordnet.first_noun_sense(name)
            banned: set[int] = set()
            if synset is not None:
                near_nodes = [n for n, d in wordnet.ancestors(synset.offset).items()
                              if d >= max(self.min_depth,
                                          wordnet.ancestors(synset.offset)[synset.offset] - 2)]
                banned = set(near_nodes)
            candidates = [(w, o) for w, o in pool if not banned & set(wordnet.ancestors(o))]
            out.append(self._rank(env, candidates, [name], count, reduce="max"))
        return out

    def fine_grained(self, env: MethodEnv, id_names: Sequence[str], kind: str,
                     count: int) -> list[str]:
        """Unseen co-hyponyms: other members of the ID classes' parent categories."""
        children, nouns = wordnet.hyponyms(), wordnet.load_synsets()["n"]
        ids = self._synsets(id_names)
        id_offsets = {s.offset for s in ids}
        siblings: dict[str, int] = {}
        for synset in ids:
            for parent in synset.hypernyms:
                stack = list(children.get(parent, []))
                while stack:  # the parent's whole subtree: siblings and their descendants
                    node = stack.pop()
                    if node not in id_offsets:
                        for word in nouns[node].words[:1]:
                            siblings.setdefault(word, node)
                    stack += children.get(node, [])
        pool = sorted(siblings.items())
        return self._rank(env, pool, list(id_names), count, reduce="mean")

    def _rank(self, env: MethodEnv, pool: list[tuple[str, int]], anchors: list[str],
              count: int, reduce: str) -> list[str]:
        if not pool or count <= 0:
            return []
        words = [w for w, _ in pool]
        sims = self._embed(env, words) @ self._embed(env, anchors).T
        score = sims.max(dim=1).values if reduce == "max" else sims.mean(dim=1)
        order = torch.argsort(score, descending=True, stable=True)[:count]
        chosen = [words[i] for i in order.tolist()]
        self.transcript.append({"kind": reduce, "anchors": anchors[:10], "answer": chosen[:50]})
        return chosen

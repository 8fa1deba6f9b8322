"""EOE-style prompt families and EOE's filters, shared by every envisioner.

The three families follow EOE (Cao et al., ICML'24): *far* (summarise the ID set's broad
visual categories, then list classes that look like them but are unrelated, over several
"more" turns), *near* (per ID class, a few visually similar classes from other domains, with
few-shot examples) and *fine-grained* (other species of the same kind, not in the dataset).
Each family has an image variant for multimodal models (``near_chat(with_image=True)``,
``elaborate_prompt``), which MM-OOD asks. The wording is ours; ``PROMPT_VERSION`` changes
whenever it does, and the hash of the whole set (image variants included) is stored with every
label bank so cached answers are never mixed across wordings. Answers are parsed by the core's
:func:`oodbench.generative.parsing.parse_list_answer`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from oodbench.cache import content_key

PROMPT_VERSION = "eoe-style/1"
Chat = list[dict[str, str]]

NEAR_EXAMPLES = (  # our own few-shot examples: similar look, different domain
    ("tennis ball", ["lime", "yellow balloon", "pom-pom"]),
    ("umbrella", ["mushroom", "lampshade", "parachute"]),
    ("zebra", ["barcode", "crosswalk", "piano keys"]),
)


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"[{n}]" for n in names)


def far_prompt(id_names: Sequence[str], count: int) -> str:
    return (
        f"An image dataset has {len(id_names)} categories: {_names(id_names)}. First summarise "
        f"which broad visual categories these belong to. Then name {count} other categories "
        f"that look visually similar to those broad categories but are not related to them. "
        f"At most three words each, one per line, each line starting with a dash."
    )


def far_more_prompt(count: int) -> str:
    return (
        f"Name {count} more categories that look visually similar to the broad categories you "
        f"summarised but are not related to them. At most three words each, none that you have "
        f"already given, one per line starting with a dash."
    )


def near_chat(id_name: str, count: int, with_image: bool = False,
              examples: Sequence[tuple[str, list[str]]] = NEAR_EXAMPLES) -> Chat:
    """Few-shot chat for one ID class (MM-OOD adds "and this image" when an image is shown).

    ``examples``: the few-shot pairs in the order shown (a seeded order varies greedy answers
    between independent generations).
    """
    chat: Chat = []
    for example, answer in examples:
        chat.append({"role": "user", "content": _near_question(example, len(answer), False)})
        chat.append({"role": "assistant", "content": "\n".join(f"- {a}" for a in answer)})
    chat.append({"role": "user", "content": _near_question(id_name, count, with_image)})
    return chat


def _near_question(name: str, count: int, with_image: bool) -> str:
    shown = " and this image" if with_image else ""
    return (
        f"Given the image category [{name}]{shown}, suggest {count} categories that look "
        f"visually similar but are not directly related to [{name}] and do not belong to its "
        f"primary group: they should come from broader, different domains. One per line, "
        f"starting with a dash."
    )


def fine_prompt(id_names: Sequence[str], kind: str, count: int) -> str:
    return (
        f"My dataset contains {len(id_names)} different kinds of {kind}: {_names(id_names)}. "
        f"List {count} distinct kinds of {kind} that are NOT in my dataset, without repeats, "
        f"one per line starting with a dash."
    )


def fine_more_prompt(kind: str, count: int) -> str:
    return (f"List {count} more kinds of {kind} that are not in my dataset and that you have not "
            f"mentioned yet, one per line starting with a dash.")


def broad_prompt(id_names: Sequence[str], count: int) -> str:
    return (f"An image dataset has these categories: {_names(id_names)}. Summarise them into "
            f"{count} broad visual categories, one per line starting with a dash.")


def elaborate_prompt(broad: Sequence[str], count: int) -> str:
    """MM-OOD far branch: the MLLM sees a generated outlier image (wording ours, versioned)."""
    return (
        f"This image shows something that is NOT in my dataset, whose broad categories are "
        f"{_names(broad)}. List {count} categories that look like this image but have no "
        f"direct relation to those broad categories. At most three words each, one per line, "
        f"each line starting with a dash."
    )


def prompts_hash() -> str:
    sample = (far_prompt(["a"], 1), far_more_prompt(1), near_chat("a", 1, True),
              fine_prompt(["a"], "k", 1), fine_more_prompt("k", 1), broad_prompt(["a"], 1),
              elaborate_prompt(["a"], 1))
    return content_key(PROMPT_VERSION, sample)[:16]


# -- filters (EOE) -------------------------------------------------------------------------------
def eoe_filter(candidates: Iterable[str], id_names: Sequence[str], near: bool = False,
               word_overlap: bool = True) -> list[str]:
    """Lowercase, de-duplicate (first occurrence wins), drop exact ID names; for near, also
    drop any candidate sharing a whitespace-separated word with any ID name (EOE's rule)."""
    id_lower = {n.lower().strip() for n in id_names}
    id_words = {w for n in id_lower for w in n.split()}
    out: dict[str, None] = {}
    for cand in candidates:
        c = " ".join(cand.lower().split())
        if not c or c in id_lower:
            continue
        if near and word_overlap and id_words & set(c.split()):
            continue
        out.setdefault(c, None)
    return list(out)


# EOE's cosine pre-filter (utils/detection_util.py, pre_filter): just before scoring, drop an
# envisioned name whose text embedding (the scoring template, "a photo of a {c}") has cosine
# > 0.85 with some ID name's. The official code applies it only for the near task with
# ImageNet-20 as ID; everywhere else its threshold is 1.0, a no-op.
COSINE_FILTER_MODES = ("auto", "always", "never")
COSINE_THRESHOLD = 0.85


def is_imagenet20(id_name: str) -> bool:
    """Whether a suite's ID set is ImageNet-20 (EOE's ``in_dataset == 'ImageNet20'``)."""
    return re.sub(r"[^a-z0-9]", "", id_name.lower()) == "imagenet20"


def cosine_filter_applies(mode: str, task: str, id_name: str) -> bool:
    """``auto``: where EOE's code applies it (near prompts, ImageNet-20 as ID); or always/never."""
    if mode not in COSINE_FILTER_MODES:
        raise ValueError(f"cosine_filter must be one of {', '.join(COSINE_FILTER_MODES)}, got "
                         f"{mode!r}")
    if mode == "auto":
        return task == "near" and is_imagenet20(id_name)
    return mode == "always"

"""Reading list answers of language models: "- x", "1. x", "* **x**", "x, y, z", "x (note)".

Every component that asks an LLM or a multimodal LLM for a list of names (label generators,
describers) parses the answer here, so one messy answer gives the same labels everywhere.
"""

from __future__ import annotations

import re

_BULLET = re.compile(r"^\s*(?:[-*•·>]+|\d+\s*[.)\]:-]|\(?[a-z]\)|#+)\s*", re.IGNORECASE)
_PAREN = re.compile(r"\s*[\(\[].*?[\)\]]\s*")
_WRAPPED = re.compile(r"^\[([^\[\]]+)\]")
_TAIL = re.compile(r"[\s.,;:!?'\"`]+$")
_HEAD = re.compile(r"^[\s'\"`*]+")
_PREAMBLE = re.compile(r"(these|here|sure|certainly|the following|below).*:\s*$", re.IGNORECASE)


_INLINE_NUMBER = re.compile(r"(?<=\S)\s+(?=\d+\s*[.)]\s)")


def parse_list_answer(text: str, max_words: int = 4) -> list[str]:
    """Labels from a messy list answer: "- x", "1. x", "* **x**", "x, y, z", "x (note)".

    When any line is a list item (bullet or number), only list items count; otherwise the
    answer is read as comma- or line-separated names, after any "Here are ...:" preamble.
    Labels are lower-cased, of at most ``max_words`` words, in the answer's order.
    """
    lines = [piece for line in text.splitlines() if line.strip()
             for piece in _INLINE_NUMBER.split(line)]
    bulleted = [line for line in lines if _BULLET.match(line)]
    if bulleted:
        # "- 1 - x" / "1. - x": a bullet and a number, both dropped
        bodies = [_BULLET.sub("", _BULLET.sub("", line, count=1), count=1) for line in bulleted]
    else:
        bodies = [line.rsplit(": ", 1)[-1] for line in lines if not _PREAMBLE.search(line)]
    items: list[str] = []
    for body in bodies:
        for part in body.split(",") if "," in body else [body]:
            part = part.split(" - ")[0].split(": ")[0]
            # "[book] (note)": the item in brackets (models copy a "[name]" prompt style)
            part = _WRAPPED.sub(r"\1 ", part.strip())
            part = _PAREN.sub(" ", part.replace("**", "").replace("__", ""))
            part = " ".join(_TAIL.sub("", _HEAD.sub("", part)).lower().split())
            if part and len(part.split()) <= max_words and re.search(r"[a-z]", part):
                items.append(part)
    return items

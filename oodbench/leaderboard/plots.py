"""Inline SVG plots of the leaderboard: ROC curves, ID-vs-OOD score histograms, interval plots.

No library: paths are built here from each record's ``curves`` (shared-bin score histograms and
a down-sampled ROC curve) with a fixed precision, so the bytes depend only on the records. Every
plot and every shape in it carries a ``<title>`` (the browser's hover text). Coordinates are
whole pixels and paths use the shortest commands (``H``/``V`` for axis-parallel steps, nothing
for a step that does not move), which keeps the page small.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from oodbench.leaderboard.text import DASH

# Tableau 10, then ten more hues that stay readable as thin lines on white; rows past these get
# hues spaced by the golden angle (distinct, deterministic).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
           "#7b4173", "#000000", "#f032e6", "#469990", "#e7ba52", "#9c9ede")
ID_COLOUR, OOD_COLOUR = "#1f77b4", "#ff7f0e"
# histogram styles as CSS classes (page.CSS), not per-path attributes: 169 plots add up
HIST_CSS = (f"path.hi{{fill:{ID_COLOUR};stroke:{ID_COLOUR}}}path.ho{{fill:{OOD_COLOUR};"
            f"stroke:{OOD_COLOUR}}}path.hi,path.ho{{fill-opacity:.45;stroke-width:.8}}"
            f"path.roc{{fill:none;stroke-width:1.6}}figure svg{{width:236px;height:234px}}"
            f".hists svg{{width:200px;height:72px}}")


def colour(index: int) -> str:
    """The ``index``-th plot colour: the palette, then golden-angle hues (never repeating)."""
    if index < len(PALETTE):
        return PALETTE[index]
    hue = (index - len(PALETTE)) * 137.508 % 360
    return f"hsl({hue:.0f},70%,{38 + 12 * (index % 2)}%)"


def colour_map(keys: Iterable[str]) -> dict[str, str]:
    """One colour per key (a method / backbone row), by sorted key: the same row has the same
    colour in every table and no two rows share one."""
    return {key: colour(i) for i, key in enumerate(sorted(set(keys)))}


@dataclass(frozen=True)
class Line:
    """One ROC curve: its colour, hover text and the record's curve (``roc_fpr``, ``roc_tpr``)."""

    colour: str
    title: str
    curve: dict[str, Any]


def _f(value: float) -> str:
    """A coordinate: whole pixels (a step below a pixel is invisible at these sizes)."""
    return str(round(value))


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _svg(width: int, height: int, title: str) -> str:
    """An ``<svg>`` with its hover title; its display size is the viewBox's (page.CSS)."""
    return f'<svg viewBox="0 0 {width} {height}">' + _title(title)


def polyline(points: Iterable[tuple[float, float]]) -> str:
    """An SVG path through ``points`` (pixels): ``H``/``V`` for axis-parallel segments, ``L``
    otherwise; repeated points are dropped and an axis-parallel step that continues the previous
    one in the same direction extends it. Coordinates are whole pixels (:func:`_f`)."""
    cmds: list[list[Any]] = []  # [command, x text, y text, direction]
    last = ("", "")
    for x, y in points:
        xs, ys = _f(x), _f(y)
        if not cmds:
            cmds.append(["M", xs, ys, 0])
        elif (xs, ys) == last:
            continue
        elif ys == last[1] or xs == last[0]:
            kind = "H" if ys == last[1] else "V"
            new, old = (float(xs), float(last[0])) if kind == "H" else (float(ys), float(last[1]))
            direction = 1 if new > old else -1
            if cmds[-1][0] == kind and cmds[-1][3] == direction:
                cmds[-1][1:3] = [xs, ys]
            else:
                cmds.append([kind, xs, ys, direction])
        else:
            cmds.append(["L", xs, ys, 0])
        last = (xs, ys)
    return "".join(_command(cmds, i) for i in range(len(cmds)))


def _command(cmds: list[list[Any]], i: int) -> str:
    """Command ``i`` absolute or relative to the previous point, whichever is shorter."""
    kind, x, y, _ = cmds[i]
    if kind == "M":
        return f"M{x},{y}"
    px, py = (int(v) for v in cmds[i - 1][1:3])
    dx, dy = int(x) - px, int(y) - py
    options = {"H": (f"H{x}", f"h{dx}"), "V": (f"V{y}", f"v{dy}"),
               "L": (f"L{x},{y}", f"l{dx},{dy}")}[kind]
    return min(options, key=len)


def thinned(points: Sequence[tuple[float, float]], step: float = 6.0
            ) -> list[tuple[float, float]]:
    """The points at least ``step`` pixels (|dx| + |dy|) from the previous kept one, and the
    last: a curve drawn at plot resolution (the page stays small with many methods)."""
    kept: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(points):
        if (not kept or i == len(points) - 1
                or abs(x - kept[-1][0]) + abs(y - kept[-1][1]) >= step):
            kept.append((x, y))
    return kept


def merged_bins(edges: list[float], hists: list[list[float]], most: int = 10
                ) -> tuple[list[float], list[list[float]]]:
    """Adjacent bins summed pairwise until there are at most ``most`` (a thumbnail's width)."""
    while len(edges) - 1 > most and (len(edges) - 1) % 2 == 0:
        edges = edges[::2]
        hists = [[h[i] + h[i + 1] for i in range(0, len(h), 2)] for h in hists]
    return edges, hists


def roc_svg(lines: Sequence[Line], title: str, size: int = 200) -> str:
    """ROC curves of one OOD set on a square plot with axes, ticks and the 95 % TPR line."""
    left, top = 28, 8
    width, height = size + left + 8, size + top + 26

    def xy(fpr: float, tpr: float) -> tuple[float, float]:
        return left + fpr * size, top + (1 - tpr) * size

    out = [_svg(width, height, title),
           f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="#fcfcfc" '
           f'stroke="#999">{_title("FPR (OOD accepted as ID) vs TPR (ID recall)")}</rect>',
           f'<path d="{polyline([xy(0, 0), xy(1, 1)])}" stroke="#bbb" stroke-dasharray="4 3">'
           f'{_title("chance (AUROC 50 %)")}</path>',
           f'<path d="{polyline([xy(0, 0.95), xy(1, 0.95)])}" stroke="#ddd">'
           f'{_title("TPR 95 %: FPR95 is where a curve crosses this line")}</path>']
    for tick in (0.0, 0.5, 1.0):
        x, y = xy(tick, tick)
        out.append(f'<text x="{_f(x)}" y="{top + size + 12}" text-anchor="middle">{tick:g}'
                   f'</text><text x="{left - 4}" y="{_f(y + 3)}" text-anchor="end">{tick:g}'
                   f"</text>")
    out.append(f'<text x="{left + size // 2}" y="{height - 2}" text-anchor="middle">FPR'
               f'</text><text x="10" y="{top + size // 2}" text-anchor="middle" '
               f'transform="rotate(-90 10 {top + size // 2})">TPR</text>')
    for line in lines:
        d = polyline(thinned([xy(f, t) for f, t in zip(line.curve.get("roc_fpr", []),
                                                       line.curve.get("roc_tpr", []),
                                                       strict=False)]))
        if d:
            out.append(f'<path class="roc" d="{d}" stroke="{line.colour}">{_title(line.title)}'
                       f"</path>")
    return "".join([*out, "</svg>"])


def hist_svg(curve: dict[str, Any], title: str, width: int = 200, height: int = 60) -> str:
    """Overlaid ID and OOD score histograms (fractions, shared bins); the hover title gives the
    score range."""
    edges = [float(e) for e in curve.get("edges", [])]
    hists = [[float(v) for v in curve.get(k, [])] for k in ("id_hist", "ood_hist")]
    if len(edges) < 2 or any(len(h) != len(edges) - 1 for h in hists):
        return DASH
    edges, hists = merged_bins(edges, hists)
    fractions = [[v / (sum(h) or 1.0) for v in h] for h in hists]
    peak = max(max(f) for f in fractions) or 1.0
    step = width / (len(edges) - 1)
    low, high = f"{edges[0]:.3g}", f"{edges[-1]:.3g}"
    out = [_svg(width, height, f"{title}: scores {low} to {high}")]
    for hist, fraction, (cls, name) in zip(hists, fractions, (("hi", "ID"), ("ho", "OOD")),
                                           strict=True):
        points = [(0.0, float(height))]
        for i, v in enumerate(fraction):
            y = height - v / peak * (height - 4)
            points += [(i * step, y), ((i + 1) * step, y)]
        d = polyline([*points, (float(width), float(height))]) + "Z"
        out.append(f'<path class="{cls}" d="{d}">{_title(f"{name}: {sum(hist):.0f} images")}'
                   f"</path>")
    return "".join([*out, "</svg>"])

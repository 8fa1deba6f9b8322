"""Inline SVG plots of the leaderboard: ROC curves and ID-vs-OOD score histograms.

No library: paths are built here from each record's ``curves`` (shared-bin score histograms and
a down-sampled ROC curve) with a fixed precision, so the bytes depend only on the records.
"""

from __future__ import annotations

from typing import Any

from oodbench.leaderboard.text import DASH

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
ID_COLOUR, OOD_COLOUR = "#1f77b4", "#ff7f0e"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _f(value: float) -> str:
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def roc_svg(lines: list[tuple[int, dict[str, Any]]], size: int = 200) -> str:
    """ROC curves (one per row index, coloured by it) on a square plot with axes and ticks."""
    left, top = 28, 8
    width, height = size + left + 8, size + top + 26

    def xy(fpr: float, tpr: float) -> str:
        return f"{_f(left + fpr * size)},{_f(top + (1 - tpr) * size)}"

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img">',
           f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="#fcfcfc" '
           f'stroke="#999"/>',
           f'<path d="M{xy(0, 0)}L{xy(1, 1)}" stroke="#bbb" stroke-dasharray="4 3"/>',
           f'<path d="M{xy(0, 0.95)}L{xy(1, 0.95)}" stroke="#ddd"/>']
    for tick in (0.0, 0.5, 1.0):
        x, y = left + tick * size, top + (1 - tick) * size
        out.append(f'<text x="{_f(x)}" y="{top + size + 12}" text-anchor="middle">{tick:g}'
                   f'</text><text x="{left - 4}" y="{_f(y + 3)}" text-anchor="end">{tick:g}'
                   f"</text>")
    out.append(f'<text x="{left + size // 2}" y="{height - 2}" text-anchor="middle">FPR'
               f'</text><text x="10" y="{top + size // 2}" text-anchor="middle" '
               f'transform="rotate(-90 10 {top + size // 2})">TPR</text>')
    for index, curve in lines:
        points = "L".join(xy(f, t) for f, t in zip(curve.get("roc_fpr", []),
                                                   curve.get("roc_tpr", []), strict=False))
        if points:
            out.append(f'<path d="M{points}" fill="none" stroke="{colour(index)}" '
                       f'stroke-width="1.6"/>')
    return "".join([*out, "</svg>"])


def hist_svg(curve: dict[str, Any], width: int = 200, height: int = 60) -> str:
    """Overlaid ID and OOD score histograms (fractions, shared bins) with the score range."""
    edges = [float(e) for e in curve.get("edges", [])]
    hists = [[float(v) for v in curve.get(k, [])] for k in ("id_hist", "ood_hist")]
    if len(edges) < 2 or any(len(h) != len(edges) - 1 for h in hists):
        return DASH
    fractions = [[v / (sum(h) or 1.0) for v in h] for h in hists]
    peak = max(max(f) for f in fractions) or 1.0
    step = width / (len(edges) - 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 12}" '
           f'viewBox="0 0 {width} {height + 12}" role="img">',
           f'<path d="M0,{height}H{width}" stroke="#999"/>']
    for fraction, colour in zip(fractions, (ID_COLOUR, OOD_COLOUR), strict=True):
        d = [f"M0,{height}"]
        for i, v in enumerate(fraction):
            d.append(f"V{_f(height - v / peak * (height - 4))}H{_f((i + 1) * step)}")
        d.append(f"V{height}Z")
        out.append(f'<path d="{"".join(d)}" fill="{colour}" fill-opacity="0.45" '
                   f'stroke="{colour}" stroke-width="0.8"/>')
    out.append(f'<text x="1" y="{height + 10}">{edges[0]:.4g}</text><text x="{width - 1}" '
               f'y="{height + 10}" text-anchor="end">{edges[-1]:.4g}</text>')
    return "".join([*out, "</svg>"])



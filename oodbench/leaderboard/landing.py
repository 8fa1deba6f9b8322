"""The landing page ``index.html``: per suite, what the records say about it, its ranking in
brief and a link to its page; then the published numbers and the skipped records.

Per-set cells, ROC curves and score histograms live on the suite pages (:mod:`page`), so this
page grows with the number of rows, not with plots.
"""

from __future__ import annotations

from html import escape
from typing import Any

from oodbench.leaderboard.page import (
    describe,
    document,
    page_names,
    ranking_table,
    suite_tables,
    suites,
)
from oodbench.leaderboard.tables import SOURCES, Leaderboard, Table
from oodbench.leaderboard.text import (
    CI_NOTE,
    GENERATIONS_NOTE,
    REPORTED_NOTE,
    SIGNIFICANCE_NOTE,
    notes,
    reported_cell,
)

INTRO = ("Measured results of the result records in <code>results/</code>, one per method x "
         "suite x backbone run, with one page per suite: its full tables (FPR95 and AUROC per "
         "OOD set, bootstrap intervals, provenance), ROC curves and score distributions. Here, "
         "each suite's ranking in brief: FPR95 (lower is better) and AUROC (higher is better) in "
         "%, averaged (unweighted) over the near / far sets; the best value of each column is "
         "highlighted; ID acc is zero-shot top-1 accuracy on the ID test set. Rows are ranked by "
         "mean AUROC over the suite's OOD sets; click a header to sort. A rank alone does not say "
         "that a row is better: where records carry per-image scores, vs baseline says whether a "
         "row differs significantly from the best core baseline on the same images. Records "
         "computed under different FPR95 conventions never share a table.")


def render_html(board: Leaderboard) -> str:
    """``index.html``: the landing page."""
    names = page_names(board)
    body = ["<h1>oodbench leaderboard</h1>", f'<p class="intro">{INTRO}</p>', *_notes(board),
            _nav(board, names)]
    for source, heading in SOURCES:
        body.append(f'<section id="{source}"><h2>{escape(heading)}</h2>')
        # a suite is listed once, under the source of its first table
        listed = [s for s in suites(board) if suite_tables(board, s)[0].source == source]
        body += [_suite(board, s, names[s]) for s in listed] or ["<p>No records yet.</p>"]
        body.append("</section>")
    if board.reported:
        body.append(_reported_section(board.reported))
    if board.skipped:
        items = "".join(f"<li><code>{escape(n)}</code>: {escape(r)}</li>"
                        for n, r in board.skipped)
        body.append(f'<section id="skipped"><h2>Skipped records</h2><p>These files failed '
                    f"validation and are not shown:</p><ul>{items}</ul></section>")
    return document("oodbench leaderboard", body)


def suite_id(page: str) -> str:
    """The landing page's anchor of a suite (``suite-`` and its page's stem: never taken by a
    section of its own)."""
    return "suite-" + page.removesuffix(".html")


def _nav(board: Leaderboard, names: dict[str, str]) -> str:
    links = [f'<a href="#{suite_id(names[s])}">{escape(s)}</a>' for s in suites(board)]
    if board.reported:
        links.append('<a href="#reported">reported (not measured here)</a>')
    return "<nav>" + " · ".join(links) + "</nav>" if links else ""


def _notes(board: Leaderboard) -> list[str]:
    """The tables' notes once for the page; intervals are on the suite pages only."""
    needed = {note for t in board.tables for note in notes(t)} - {CI_NOTE}
    return [f'<p class="intro">{escape(note, quote=False).replace("*", "")}</p>'
            for note in (GENERATIONS_NOTE, SIGNIFICANCE_NOTE) if note in needed]


def _suite(board: Leaderboard, suite: str, page: str) -> str:
    tables = suite_tables(board, suite)
    parts = [f'<section id="{suite_id(page)}"><h3><a href="{page}">{escape(suite)}</a></h3>',
             f"<p>{describe(tables)}</p>"]
    parts += [_brief(table, page) for table in tables]
    return "\n".join([*parts, "</section>"])


def _brief(table: Table, page: str) -> str:
    return "\n".join([f"<h4>{escape(table.title)}</h4>", '<div class="scroll">',
                      ranking_table(table, summary=True), "</div>",
                      f'<p><a href="{page}#{table.anchor}">per-set results, ROC curves and score '
                      f"distributions</a></p>"])


# -- reported --------------------------------------------------------------------------------
def _reported_section(tables: list[dict[str, Any]]) -> str:
    parts = ['<section id="reported" class="reported"><h2>Reported (not measured here)</h2>',
             f"<p>{escape(REPORTED_NOTE).replace('**', '')}</p>"]
    for table in tables:
        cols = [str(c) for c in table["columns"]]
        head = "".join(f"<th>{escape(c)}<br><small>FPR95 ↓ / AUROC ↑</small></th>"
                       for c in cols)
        rows = []
        for row in table["rows"]:
            values = row.get("values") or {}
            cells = "".join(f'<td class="num">{escape(reported_cell(values.get(c)))}</td>'
                            for c in cols)
            rows.append(f"<tr><td>{escape(str(row['method']))} (reported)</td>{cells}"
                        f"<td>{escape(str(row.get('tag', '')))}</td></tr>")
        note = f"<p>{escape(str(table['note']))}</p>" if table.get("note") else ""
        parts.append(f"<h3>Reported: {escape(str(table['title']))}</h3><p>Source: "
                     f"{escape(str(table['source']))}</p><table><thead><tr><th>method</th>"
                     f"{head}<th>tag</th></tr></thead><tbody>{''.join(rows)}</tbody>"
                     f"</table>{note}")
    return "\n".join([*parts, "</section>"])

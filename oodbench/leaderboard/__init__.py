"""Result records -> the leaderboard: ``README.md`` (markdown tables), one HTML page per suite
(``<suite>.html``: tables and plots) and the landing page ``index.html`` (each suite's ranking in
brief, linking its page).

One table per (source, suite, FPR95 convention): offline-suite rows and real-suite rows live in
separate sections, and records computed under different FPR95 conventions never share a table.
Rows are method x backbone, ranked by mean AUROC over the table's OOD sets; the best value of
every column is marked. Invalid records are listed by file name and left out, never averaged.
Published numbers (``reported.yaml``) get their own clearly labelled tables. A record of N > 1
independent generations (a ``generations`` block) shows mean ± standard deviation in its cells.

The output is a pure function of the records: sorted, no clock, so ``check`` can compare bytes.

Modules: ``records`` (loading, validation), ``tables`` (grouping, ranking, columns), ``text``
(cell texts), ``markdown`` (README.md), ``page`` (the suite pages and the shared page shell),
``landing`` (index.html), ``plots`` (SVG), ``build`` (build and check).
"""

from oodbench.leaderboard.build import build, check, collect, default_reported, render
from oodbench.leaderboard.landing import render_html
from oodbench.leaderboard.markdown import render_markdown
from oodbench.leaderboard.page import page_names, render_suite
from oodbench.leaderboard.records import Entry, load_entries, load_reported, source_of
from oodbench.leaderboard.tables import Column, Leaderboard, Table, best_cells, columns, make_tables

__all__ = ["Column", "Entry", "Leaderboard", "Table", "best_cells", "build", "check", "collect",
           "columns", "default_reported", "load_entries", "load_reported", "make_tables",
           "page_names", "render", "render_html", "render_markdown", "render_suite", "source_of"]

"""Build and check the leaderboard files: the records in; ``README.md``, the landing page
``index.html`` and one page per suite (``<suite>.html``) out.

The HTML pages ``build`` writes carry :data:`page.GENERATED` at their top: a ``*.html`` in the
output folder with that mark and no suite is a stale page of a suite that lost its records;
``build`` removes it and ``check`` names it. Any other HTML file there is left alone.
"""

from __future__ import annotations

import difflib
from functools import partial
from pathlib import Path

from oodbench.cache import atomic_write
from oodbench.leaderboard.landing import render_html
from oodbench.leaderboard.markdown import render_markdown
from oodbench.leaderboard.page import GENERATED, INDEX, page_names, render_suite
from oodbench.leaderboard.records import load_entries, load_reported
from oodbench.leaderboard.tables import Leaderboard, make_tables


def collect(results_dir: Path, reported: Path | None = None) -> Leaderboard:
    entries, skipped = load_entries(results_dir)
    return Leaderboard(make_tables(entries), skipped, load_reported(reported))


def default_reported(results_dir: Path) -> Path:
    """``reported.yaml`` lives next to the results folder."""
    return Path(results_dir).parent / "reported.yaml"


def render(board: Leaderboard) -> dict[str, str]:
    """File name -> content of every generated file."""
    pages = {name: render_suite(board, suite) for suite, name in page_names(board).items()}
    return {"README.md": render_markdown(board), INDEX: render_html(board), **pages}


def build(results_dir: Path, out_dir: Path, reported: Path | None = None) -> Leaderboard:
    """Regenerate the leaderboard files in ``out_dir`` and remove its stale pages; returns what
    was built."""
    board = collect(results_dir, reported)
    files = render(board)
    for name, text in files.items():
        target = Path(out_dir) / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            atomic_write(target, partial(_write_public, text=text))
    for page in stale_pages(out_dir, files):
        page.unlink()
    return board


def stale_pages(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """The generated pages in ``out_dir`` that ``files`` does not hold (sorted)."""
    return [path for path in sorted(Path(out_dir).glob("*.html"))
            if path.name not in files and is_generated(path)]


def is_generated(path: Path) -> bool:
    """Whether ``path`` is a regular file that ``build`` wrote: its first lines hold the mark."""
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as file:
        head = file.read(512).decode("utf-8", errors="replace")
    return GENERATED in head.splitlines()[:3]


def _write_public(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")
    path.chmod(0o644)  # a web page and a README, not a secret (mkstemp makes files 0600)


def check(results_dir: Path, out_dir: Path,
          reported: Path | None = None) -> tuple[Leaderboard, list[str]]:
    """Differences between the files in ``out_dir`` and what the records generate."""
    board = collect(results_dir, reported)
    # an invalid record is left out of the tables, so the tables alone cannot show it
    problems = [f"{name} is not a valid result record: {reason}" for name, reason in board.skipped]
    files = render(board)
    for name, text in files.items():
        target = Path(out_dir) / name
        if not target.exists():
            problems.append(f"{target} is missing")
            continue
        current = target.read_text(encoding="utf-8")
        if current != text:
            problems.append(f"{target} differs from what the records generate:\n"
                            + _diff(current, text, name))
    problems += [f"{page} is a generated page of a suite without records (stale); "
                 f"`oodbench leaderboard build` removes it" for page in stale_pages(out_dir, files)]
    return board, problems


def _diff(current: str, expected: str, name: str, limit: int = 12) -> str:
    lines = list(difflib.unified_diff(current.splitlines(), expected.splitlines(),
                                      f"committed/{name}", f"generated/{name}", n=0,
                                      lineterm=""))
    shown = [line if len(line) <= 160 else line[:157] + "..." for line in lines[:limit]]
    more = f"\n  ... ({len(lines) - limit} more diff lines)" if len(lines) > limit else ""
    return "\n".join(f"  {line}" for line in shown) + more


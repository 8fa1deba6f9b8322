"""Build and check the leaderboard files: the records in, ``README.md`` and ``index.html`` out."""

from __future__ import annotations

import difflib
from functools import partial
from pathlib import Path

from oodbench.cache import atomic_write
from oodbench.leaderboard.markdown import render_markdown
from oodbench.leaderboard.page import render_html
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
    return {"README.md": render_markdown(board), "index.html": render_html(board)}


def build(results_dir: Path, out_dir: Path, reported: Path | None = None) -> Leaderboard:
    """Regenerate the leaderboard files in ``out_dir``; returns what was built."""
    board = collect(results_dir, reported)
    for name, text in render(board).items():
        target = Path(out_dir) / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            atomic_write(target, partial(_write_public, text=text))
    return board


def _write_public(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")
    path.chmod(0o644)  # a web page and a README, not a secret (mkstemp makes files 0600)


def check(results_dir: Path, out_dir: Path,
          reported: Path | None = None) -> tuple[Leaderboard, list[str]]:
    """Differences between the files in ``out_dir`` and what the records generate."""
    board = collect(results_dir, reported)
    # an invalid record is left out of the tables, so the tables alone cannot show it
    problems = [f"{name} is not a valid result record: {reason}" for name, reason in board.skipped]
    for name, text in render(board).items():
        target = Path(out_dir) / name
        if not target.exists():
            problems.append(f"{target} is missing")
            continue
        current = target.read_text(encoding="utf-8")
        if current != text:
            problems.append(f"{target} differs from what the records generate:\n"
                            + _diff(current, text, name))
    return board, problems


def _diff(current: str, expected: str, name: str, limit: int = 12) -> str:
    lines = list(difflib.unified_diff(current.splitlines(), expected.splitlines(),
                                      f"committed/{name}", f"generated/{name}", n=0,
                                      lineterm=""))
    shown = [line if len(line) <= 160 else line[:157] + "..." for line in lines[:limit]]
    more = f"\n  ... ({len(lines) - limit} more diff lines)" if len(lines) > limit else ""
    return "\n".join(f"  {line}" for line in shown) + more


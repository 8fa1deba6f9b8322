"""``oodbench leaderboard build|check``: mounted by the main CLI as a sub-app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from oodbench.errors import OODBenchError

leaderboard_app = typer.Typer(help="Build or check the leaderboard from result records.",
                              no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

ResultsOption = Annotated[Path, typer.Option("--results", help="Folder of result records.")]
OutOption = Annotated[Path, typer.Option(
    "--out", help="Folder of README.md, index.html and the per-suite pages.")]
ReportedOption = Annotated[Path | None, typer.Option(
    "--reported", help="Published numbers (default: reported.yaml next to --results).")]


def _reported(results: Path, reported: Path | None) -> Path:
    from oodbench.leaderboard import default_reported

    return reported if reported is not None else default_reported(results)


def _warn_skipped(skipped: list[tuple[str, str]]) -> None:
    for name, reason in skipped:
        err_console.print(f"[yellow]skipped invalid record[/] {name}: {reason}",
                          highlight=False, soft_wrap=True)


@leaderboard_app.command()
def build(results: ResultsOption = Path("leaderboard/results"),
          out: OutOption = Path("leaderboard"), reported: ReportedOption = None) -> None:
    """Regenerate README.md, index.html and one page per suite from the result records."""
    from oodbench.leaderboard import build as build_leaderboard

    try:
        board = build_leaderboard(results, out, _reported(results, reported))
    except OODBenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    _warn_skipped(board.skipped)
    rows = sum(len(t.entries) for t in board.tables)
    console.print(f"leaderboard: {rows} records in {len(board.tables)} tables -> "
                  f"{out / 'README.md'}, {out / 'index.html'} and {len(board.tables)} suite pages",
                  highlight=False, soft_wrap=True)


@leaderboard_app.command()
def check(results: ResultsOption = Path("leaderboard/results"),
          out: OutOption = Path("leaderboard"), reported: ReportedOption = None) -> None:
    """Fail (exit 1) when the leaderboard files are not what the records generate."""
    from oodbench.leaderboard import check as check_leaderboard

    try:
        board, problems = check_leaderboard(results, out, _reported(results, reported))
    except OODBenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    _warn_skipped(board.skipped)
    if problems:
        for problem in problems:
            err_console.print(problem, highlight=False, markup=False, soft_wrap=True)
        err_console.print("[bold red]error:[/] the leaderboard is out of date; run "
                          "`oodbench leaderboard build` and commit the result.", highlight=False)
        raise typer.Exit(1)
    console.print(f"leaderboard up to date ({sum(len(t.entries) for t in board.tables)} "
                  f"records).", highlight=False)

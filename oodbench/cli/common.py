"""What every command shares: the consoles, one-line errors, the registry, progress, tables."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from oodbench.errors import OODBenchError

console = Console()
err_console = Console(stderr=True)

Phase = Callable[[str, int], Callable[[int, int], None]]


class State:
    """Global options (``oodbench --debug ...``), set by the app callback."""

    debug: bool = False
    reported: Any = None  # the registry whose refused plugins this command reported


def print_error(message: str) -> None:
    """``error: <message>`` on one stderr line; the message is printed as written."""
    err_console.print(f"[bold red]error:[/] {_escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Print an OODBenchError on one line and exit with its code; never a traceback."""
    try:
        yield
    except OODBenchError as exc:
        if State.debug:
            err_console.print_exception()
        print_error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: no result record was written; cached work is kept.")
        raise typer.Exit(130) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print_error(f"no space left on the device{where}; free some space or point "
                    f"--cache-dir / --output (OODBENCH_HOME) at another disk. Nothing partial "
                    f"was kept.")
        raise typer.Exit(2) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def registry() -> Any:
    """The process-wide registry; each refused plugin is reported in one stderr line."""
    from oodbench.plugins import get_registry

    reg = get_registry()
    if State.reported is reg:
        return reg
    State.reported = reg
    for info in reg.failures():
        err_console.print(f"[yellow]warning:[/] {_escape(reg.failure_line(info))}",
                          highlight=False, soft_wrap=True)
        if State.debug and info.traceback:
            err_console.print(info.traceback, markup=False, highlight=False, soft_wrap=True)
    return reg


def log(message: str) -> None:
    err_console.print(f"[dim]{_escape(message)}[/]", highlight=False)


@contextmanager
def progress() -> Iterator[Phase]:
    """Progress bars on stderr (only on a terminal): ``phase(name, total)`` starts one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn(), console=err_console,
                   transient=False, disable=not err_console.is_terminal)

    def phase(name: str, total: int) -> Callable[[int, int], None]:
        task = bar.add_task(name, total=total)
        return lambda done, _total: bar.update(task, completed=done)

    with bar:
        yield phase


def lazy_phase(phase: Phase, label: str) -> Callable[[int, int], None]:
    """A progress callback whose bar appears with the first update (the total is known then)."""
    bar: list[Callable[[int, int], None]] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(phase(label, total))
        bar[0](done, total)

    return update


def table(title: str | None, *columns: str) -> Table:
    out = Table(title=title)
    for column in columns:
        out.add_column(column)
    return out


def print_table(rendered: Table) -> None:
    """A table; on a terminal fitted to its width, otherwise (piped) at its natural width, so
    that no name is cut or wrapped."""
    if console.is_terminal:
        console.print(rendered)
        return
    from rich.measure import Measurement
    from rich.segment import Segments

    wide = console.options.update_width(1_000_000)
    width = max(Measurement.get(console, wide, rendered).maximum, 1)
    console.print(Segments(console.render(rendered, console.options.update_width(width))),
                  crop=False)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, no wrapping."""
    typer.echo(json.dumps(data, indent=2, default=str))

"""The ``oodbench`` Typer app: global options, one-line usage errors, and every command."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from oodbench.cli import data, labels, listings, run, schema, suites
from oodbench.cli.common import State, console, print_error
from oodbench.errors import OODBenchError

# typer >= 0.20 vendors click: take its exception classes from typer's own BadParameter
_CLICK_ERRORS = {c.__name__: c for c in typer.BadParameter.__mro__}
UsageError: type[Exception] = _CLICK_ERRORS["UsageError"]
ClickException: type[Exception] = _CLICK_ERRORS["ClickException"]


class OneLineErrors(TyperGroup):
    """Usage errors (a bad choice, a missing option) print one line and exit 2, as every other
    oodbench error does, instead of click's usage box."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone = kwargs.pop("standalone_mode", True)
        kwargs["standalone_mode"] = False  # errors come back here instead of being printed
        if not standalone:
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **kwargs)
        except UsageError as exc:
            sys.exit(_usage_error(exc))
        except ClickException as exc:
            print_error(" ".join(exc.format_message().split()))  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        except typer.Abort:
            sys.exit(1)
        except OODBenchError as exc:  # raised outside a command body (e.g. option parsing)
            print_error(str(exc))
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def _usage_error(exc: Any) -> int:
    """One line naming the problem and where the help is; a bare group prints its help."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        if exc.format_message().strip():  # typer's rich help is printed already
            exc.show()
        return int(exc.exit_code)
    where = exc.ctx.command_path if exc.ctx else "oodbench"
    message = exc.format_message().replace("Value error, ", "")  # typer's wording of a choice
    print_error(" ".join(f"{message} See `{where} --help`.".split()))
    return int(exc.exit_code)


app = typer.Typer(
    name="oodbench",
    cls=OneLineErrors,
    help="Benchmark out-of-distribution detection methods on vision-language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        from oodbench import __version__

        console.print(f"oodbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback,
                                          is_eager=True, help="Print the version.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks: of plugins that were not loaded, and of errors.")]
        = False,
) -> None:
    """Benchmark out-of-distribution detection methods on vision-language models."""
    State.debug = debug
    State.reported = None


app.command()(run.run)
app.command()(listings.plugins)
app.command()(listings.methods)
app.command()(listings.backbones)
app.command()(listings.components)
app.add_typer(suites.suites_app, name="suites")
app.add_typer(data.data_app, name="data")
app.add_typer(labels.labels_app, name="labels")
app.add_typer(schema.schema_app, name="schema")


def _mount_leaderboard() -> None:
    from oodbench.leaderboard_cli import leaderboard_app  # light: no torch at import

    app.add_typer(leaderboard_app, name="leaderboard")


_mount_leaderboard()


def main() -> None:
    app()

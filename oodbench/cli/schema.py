"""``oodbench schema``: the published JSON Schemas (``schema record``)."""

from __future__ import annotations

import typer

from oodbench.cli.common import print_json, user_errors

schema_app = typer.Typer(help="Print the JSON Schema of oodbench's files.", no_args_is_help=True)


@schema_app.command("record")
def schema_record() -> None:
    """Print the JSON Schema of a result record (what `leaderboard build/check` validates)."""
    with user_errors():
        from oodbench.results import record_json_schema

        print_json(record_json_schema())

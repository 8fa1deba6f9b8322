"""``oodbench labels``: list, show, export and import the label banks in the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from oodbench.cli.common import console, print_json, print_table, table, user_errors

labels_app = typer.Typer(help="Label banks: list, show, export and import.", no_args_is_help=True)

CacheOption = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Cache folder (default: $OODBENCH_CACHE).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the listing as JSON.")]


def _cache(cache_dir: Path | None) -> Any:
    from oodbench.cache import ArtifactCache
    from oodbench.paths import cache_dir as default_cache

    return ArtifactCache(cache_dir or default_cache())


@labels_app.command("list")
def labels_list(cache_dir: CacheOption = None, as_json: JsonOpt = False) -> None:
    """List the label banks in the cache."""
    with user_errors():
        from oodbench.labels.bank import list_banks

        rows: list[dict[str, Any]] = [
            {"key": key, "generator": bank.generator, "labels": len(bank.labels),
             "source": bank.source} for key, bank in list_banks(_cache(cache_dir))]
        if as_json:
            print_json(rows)
            return
        out = table("label banks", "key", "generator", "labels", "source")
        for row in rows:
            out.add_row(row["key"][:16], escape(row["generator"]), str(row["labels"]),
                        escape(str(row["source"])))
        print_table(out)


@labels_app.command("show")
def labels_show(
    ref: Annotated[str, typer.Argument(help="Bank file or cache key (prefix).")],
    limit: Annotated[int, typer.Option(help="How many labels to print.")] = 20,
    cache_dir: CacheOption = None,
) -> None:
    """Show a label bank: provenance and the first labels."""
    with user_errors():
        from oodbench.labels.bank import find_bank
        from oodbench.types import LabelBank

        path = find_bank(_cache(cache_dir), ref)
        bank = LabelBank.load(path)
        console.print(f"[bold]{escape(str(path))}[/]\ngenerator: {escape(bank.generator)}  "
                      f"source: {escape(str(bank.source))}  labels: {len(bank.labels)}\n"
                      f"params: {escape(str(bank.params))}\n"
                      f"templates: {escape(str(bank.templates))}")
        for key, value in bank.meta.items():
            console.print(f"meta.{key}: {escape(str(value)[:200])}")
        console.print(escape(", ".join(bank.labels[:limit]))
                      + (" ..." if len(bank.labels) > limit else ""))


@labels_app.command("export")
def labels_export(
    ref: Annotated[str, typer.Argument(help="Cache key (prefix) or file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write the bank to.")],
    cache_dir: CacheOption = None,
) -> None:
    """Copy a cached label bank to a file to share it."""
    with user_errors():
        from oodbench.labels.bank import export_bank

        console.print(f"exported to {export_bank(_cache(cache_dir), ref, out)}")


@labels_app.command("import")
def labels_import(
    file: Annotated[Path, typer.Argument(help="A label bank file (from `labels export`).")],
    cache_dir: CacheOption = None,
) -> None:
    """Put a shared label bank into the cache, where its generator will find it."""
    with user_errors():
        from oodbench.labels.bank import import_bank

        key, bank = import_bank(_cache(cache_dir), file)
        console.print(f"imported {len(bank.labels)} labels from {bank.generator} as {key[:16]}")

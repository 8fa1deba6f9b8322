"""The listings: ``plugins``, ``methods``, ``backbones``, ``components`` (each with ``--json``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from oodbench.cli.common import console, print_json, print_table, registry, table, user_errors

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the listing as JSON.")]


def plugins(as_json: JsonOpt = False) -> None:
    """List plugins, their distributions and versions, and what each registers."""
    with user_errors():
        reg = registry()
        rows = [{"plugin": info.name, "distribution": info.distribution,
                 "version": info.version, "builtin": info.builtin,
                 "registers": [f"{kind}:{name}" for kind, name in info.registered],
                 "refused": [f"{kind}:{name}" for kind, name in info.offered],
                 "error": info.error} for info in reg.plugins]
        if as_json:
            print_json(rows)
            return
        out = table("oodbench plugins", "plugin", "distribution", "version", "registers",
                    "status")
        for row in rows:
            status = f"[red]not loaded: {escape(row['error'])}[/]" if row["error"] else "ok"
            registers = ", ".join(row["registers"] or row["refused"]) or "-"
            out.add_row(escape(row["plugin"]), escape(row["distribution"]),
                        escape(row["version"]), escape(registers), status)
        print_table(out)


def _rows(kind: str) -> list[dict[str, str]]:
    reg = registry()
    return [{"name": name, "description": reg.get(kind, name).description,
             "plugin": reg.get(kind, name).plugin,
             "distribution": reg.get(kind, name).distribution} for name in reg.names(kind)]


def _print_rows(title: str, rows: list[dict[str, str]], columns: tuple[str, ...]) -> None:
    out = table(title, *(("plugin" if c == "distribution" else c) for c in columns))
    for row in rows:
        out.add_row(*(escape(row[c]) for c in columns))
    print_table(out)


def methods(
    name: Annotated[str | None, typer.Argument(help="Show one method.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List methods, or show one method's components and parameters."""
    with user_errors():
        if name is None:
            rows = _rows("method")
            if as_json:
                print_json(rows)
            else:
                _print_rows("methods", rows, ("name", "description", "distribution"))
            return
        shown = _method(name)
        if as_json:
            print_json(shown)
            return
        console.print(f"[bold]{escape(shown['name'])}[/]: {escape(shown['description'])}")
        if shown["reference"]:
            console.print(f"reference: {escape(shown['reference'])}")
        for suite_backbone, backbone in shown["backbones"].items():
            console.print(f"backbone: {escape(backbone)} on suites whose backbone is "
                          f"{escape(suite_backbone)}")
        for part in shown["components"]:
            console.print(f"  {part['role']}: [bold]{escape(part['name'])}[/]")
            for key, value in part["params"].items():
                console.print(f"    {escape(part['name'])}.{key} = {escape(repr(value))}")


def _method(name: str) -> dict[str, Any]:
    from oodbench.runner import resolve_method

    reg = registry()
    spec = resolve_method(reg, name)
    parts = []
    for role, kind, ref in spec.components():
        component = reg.get(kind, ref.name).create(ref.params)
        parts.append({"role": role, "kind": kind, "name": ref.name, "params": component.params()})
    return {"name": spec.name, "description": spec.description,
            "reference": spec.reference or "", "backbones": dict(spec.backbones),
            "components": parts}


def backbones(as_json: JsonOpt = False) -> None:
    """List backbones."""
    with user_errors():
        rows = _rows("backbone")
        if as_json:
            print_json(rows)
        else:
            _print_rows("backbones", rows, ("name", "description", "distribution"))


def components(as_json: JsonOpt = False) -> None:
    """List every registered component (scorers, label generators, ...)."""
    with user_errors():
        from oodbench.plugins import KIND_PLURAL

        rows = [{"kind": kind, **row} for kind in KIND_PLURAL
                if kind not in ("method", "suite", "backbone") for row in _rows(kind)]
        if as_json:
            print_json(rows)
        else:
            _print_rows("components", rows, ("kind", "name", "description", "distribution"))

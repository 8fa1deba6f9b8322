"""``oodbench suites``: list, show, and write or verify checksum manifests of local copies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from oodbench.cli.common import (
    Phase,
    console,
    lazy_phase,
    print_json,
    print_table,
    progress,
    registry,
    table,
    user_errors,
)
from oodbench.errors import MissingDataError, OODBenchError

suites_app = typer.Typer(help="List benchmark suites, show one (`suites show NAME`), write or "
                              "verify checksum manifests of local copies.",
                         invoke_without_command=True)

SuiteSet = tuple[str, str, dict[str, Any], tuple[str, ...] | None]  # name, role, source, classes
NameArg = Annotated[str, typer.Argument(help="Suite name or YAML file.")]
WorkersOption = Annotated[int | None, typer.Option(
    min=1, help="Hashing threads (default: 4 per core, at most 32).")]
SetOption = Annotated[str | None, typer.Option("--set", help="Only this dataset of the suite.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the listing as JSON.")]


@suites_app.callback()
def suites(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List suites (names, task, OOD sets, description)."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        from oodbench.data.suite import load_suite

        reg = registry()
        rows: list[dict[str, Any]] = []
        for name in reg.names("suite"):
            entry = reg.get("suite", name)
            row: dict[str, Any] = {"name": name, "distribution": entry.distribution}
            try:
                suite = load_suite(entry.obj)
            except OODBenchError as exc:
                rows.append({**row, "error": str(exc)})
                continue
            rows.append({**row, "task": suite.task, "description": suite.description,
                         "ood_sets": {g: len(n) for g, n in suite.groups().items()}})
        if as_json:
            print_json(rows)
            return
        out = table("suites", "name", "task", "OOD sets", "description")
        for row in rows:
            if "error" in row:
                out.add_row(escape(row["name"]), "?", "?", f"[red]{escape(row['error'])}[/]")
                continue
            sets = ", ".join(f"{g}: {n}" for g, n in row["ood_sets"].items())
            out.add_row(escape(row["name"]), row["task"], sets, escape(row["description"]))
        print_table(out)


def suite_sets(suite: Any, only: str | None = None) -> list[SuiteSet]:
    """The suite's datasets as shown by `suites show`; ``only`` selects one by name."""
    rows: list[SuiteSet] = [(suite.id_name, "ID test", suite.id_test, suite.classes)]
    if suite.id_train:
        rows.append((f"{suite.id_name}-train", "ID train", suite.id_train, suite.classes))
    rows += [(s.name, f"OOD {s.group}", s.source, None) for s in suite.ood]
    if only is None:
        return rows
    picked = [row for row in rows if row[0] == only]
    if not picked:
        raise OODBenchError(f"Suite {suite.name!r} has no set {only!r}; sets: "
                            f"{', '.join(row[0] for row in rows)}.")
    return picked


def _manifest_status(source: dict[str, Any], dataset: str,
                     classes: tuple[str, ...] | None) -> str:
    from oodbench.data.sources import compare_listing, folder_files, read_manifest, relative_paths

    if not source.get("manifest"):
        return "-" if source.get("type") != "imagefolder" else "none"
    try:
        manifest = read_manifest(source, dataset)
        root, files, _ = folder_files(source, dataset, classes)
    except OODBenchError as exc:
        return f"[red]{escape(str(exc))}[/]"
    diff = compare_listing(manifest, relative_paths(files, root))
    return (f"[green]listing matches[/] ({len(manifest)} files)" if diff.ok
            else f"[red]listing differs[/]: {escape(diff.summary())}")


@suites_app.command("show")
def suites_show(name: NameArg) -> None:
    """Show a suite: its datasets, which are present, and how to obtain missing ones.

    Downloads nothing: Hugging Face sets are looked up in the local caches only.
    """
    with user_errors():
        from oodbench.data.sources import probe_source
        from oodbench.runner import resolve_suite

        suite = resolve_suite(registry(), name)
        console.print(escape(f"{suite.name} v{suite.version} ({suite.task}): "
                             f"{suite.description}\nfile: {suite.path}\nhash: "
                             f"{suite.hash[:16]}"), soft_wrap=True)
        console.print(escape(f"ID classes ({len(suite.classes)}): "
                             f"{', '.join(suite.classes[:20])}"
                             + (" ..." if len(suite.classes) > 20 else "")), soft_wrap=True)
        console.print(escape(f"prompts: {', '.join(suite.prompts[:3])}"
                             + (f" (+{len(suite.prompts) - 3})" if len(suite.prompts) > 3
                                else "")), soft_wrap=True)
        out = table(None, "dataset", "role", "source", "status", "manifest")
        for dataset, role, source, classes in suite_sets(suite):
            try:
                count = probe_source(source, dataset, classes)
                status = f"[green]present[/]: {count} images"
            except OODBenchError as exc:
                status = f"[red]missing[/]: {escape(str(exc))}"
            out.add_row(escape(dataset), role, escape(str(source.get("type"))), status,
                        _manifest_status(source, dataset, classes))
        print_table(out)


@suites_app.command("manifest")
def suites_manifest(
    name: NameArg, set_name: SetOption = None,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the manifests to.")] =
        Path("."),
    workers: WorkersOption = None,
) -> None:
    """Write sha256sum manifests of the suite's image-folder sets present on this machine."""
    with user_errors():
        import time

        from oodbench.runner import resolve_suite

        suite = resolve_suite(registry(), name)
        start, written, files = time.perf_counter(), 0, 0
        with progress() as phase:
            for dataset, _role, source, classes in suite_sets(suite, set_name):
                count = _write_manifest(suite.name, dataset, source, classes, out, phase,
                                        workers)
                written, files = written + (count is not None), files + (count or 0)
        if not written:
            raise MissingDataError(f"Suite {suite.name!r}: no image-folder set is present here; "
                                   f"see `oodbench suites show {name}`.")
        console.print(f"wrote {written} manifest(s), {files} files hashed in "
                      f"{time.perf_counter() - start:.1f}s; name each in its source as "
                      f"`manifest: FILE` (relative to the suite file)", soft_wrap=True)


def _write_manifest(suite_name: str, dataset: str, source: dict[str, Any],
                    classes: tuple[str, ...] | None, out: Path, phase: Phase,
                    workers: int | None) -> int | None:
    """One set's manifest; the number of files hashed, None when the set has none here."""
    import re

    from oodbench.data.sources import folder_files, write_manifest

    if source.get("type") != "imagefolder":
        console.print(f"{dataset}: {source.get('type')} source, no manifest needed")
        return None
    root, paths, _ = folder_files(source, dataset, classes)
    if not paths:
        console.print(f"{dataset}: no images under {root}, skipped")
        return None
    # keep the file name the suite expects, so the file can be dropped in place
    file_name = Path(source["manifest"]).name if source.get("manifest") else \
        re.sub(r"[^A-Za-z0-9._-]", "_", f"{suite_name}.{dataset}.sha256")
    target = out / file_name
    count = write_manifest(paths, root, target, lazy_phase(phase, f"hashing {dataset}"), workers)
    console.print(f"{dataset}: {count} files -> {target}", highlight=False)
    return count


@suites_app.command("verify")
def suites_verify(name: NameArg, set_name: SetOption = None,
                  workers: WorkersOption = None) -> None:
    """Check local copies against their manifests: missing, extra and changed files."""
    with user_errors():
        import time

        from oodbench.runner import resolve_suite

        suite = resolve_suite(registry(), name)
        start, checked, bad, files = time.perf_counter(), 0, 0, 0
        with progress() as phase:
            for dataset, _role, source, classes in suite_sets(suite, set_name):
                if not source.get("manifest"):
                    console.print(f"{dataset}: no manifest, skipped")
                    continue
                checked += 1
                hashed, ok = _verify_set(dataset, source, classes, phase, workers)
                bad, files = bad + (not ok), files + hashed
        if not checked:
            raise OODBenchError(f"Suite {suite.name!r}: no set has a manifest; write one with "
                                f"`oodbench suites manifest {name}` and name it in the source.")
        console.print(f"verify {suite.name}: {checked} set(s), {files} files hashed in "
                      f"{time.perf_counter() - start:.1f}s: "
                      + (f"[red]{bad} mismatched[/]" if bad else "[green]all match[/]"),
                      soft_wrap=True)
        if bad:
            raise typer.Exit(1)


def _verify_set(dataset: str, source: dict[str, Any], classes: tuple[str, ...] | None,
                phase: Phase, workers: int | None) -> tuple[int, bool]:
    """The number of files hashed and whether the set matches its manifest (reported)."""
    from oodbench.data.sources import verify_manifest

    try:
        diff, hashed = verify_manifest(source, dataset, classes,
                                       lazy_phase(phase, f"verifying {dataset}"), workers)
    except OODBenchError as exc:  # e.g. a missing manifest: report, check the rest
        console.print(f"{dataset}: [red]error[/]: {escape(str(exc))}", soft_wrap=True,
                      highlight=False)
        return 0, False
    if diff.ok:
        console.print(f"{dataset}: [green]ok[/] ({hashed} files)")
    else:
        console.print(f"{dataset}: [red]mismatch[/]: {escape(diff.summary())}", soft_wrap=True,
                      highlight=False)
    return hashed, diff.ok

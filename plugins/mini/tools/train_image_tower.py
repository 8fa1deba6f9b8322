"""Train the mini backbone's image tower (LiT against the frozen MiniLM text tower).

    python plugins/mini/tools/train_image_tower.py \
        --out plugins/mini/oodbench_mini/weights/image_tower.safetensors \
        --epochs 10 --samples-per-epoch 16384

Writes the weights, then (unless --no-docs) SHA256SUMS, README.md and
reference_similarity.json next to them. Needs the offline catalogue
(`oodbench data fetch-offline`). The library code is in :mod:`oodbench_mini.train_tower`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from oodbench_mini.evaluate import evaluate_suites
from oodbench_mini.model import DEFAULT_WEIGHTS
from oodbench_mini.reference import write_reference
from oodbench_mini.train_tower import train_mini, write_weights_docs

COMMAND = "python plugins/mini/tools/train_image_tower.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the mini backbone's image tower.")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples-per-epoch", type=int, default=12000)
    parser.add_argument("--no-docs", action="store_true", help="skip README.md / SHA256SUMS")
    parser.add_argument(
        "--reference-only",
        action="store_true",
        help="only (re)write reference_similarity.json for the --out weights",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.reference_only:
        print(json.dumps(write_reference(args.out), indent=1))
        return
    started = time.time()
    summary = train_mini(
        args.data_dir, args.out, args.epochs, args.seed, samples_per_epoch=args.samples_per_epoch
    )
    summary["zero_shot"] = evaluate_suites(args.out, args.data_dir)
    summary["total_wall_s"] = round(time.time() - started, 1)
    print(json.dumps(summary, indent=1))
    if not args.no_docs:
        write_weights_docs(args.out, summary, f"{COMMAND} {shlex.join(sys.argv[1:])}")
        write_reference(args.out)


if __name__ == "__main__":
    main()

"""Train mini-diffusion on the offline catalogue's train split (resumable), and export it.

    python plugins/mini/tools/train_diffusion.py --max-minutes 90   # resumes from --resume-dir
    python plugins/mini/tools/train_diffusion.py --export-only      # newest checkpoint -> weights

Checkpoints live in the cache; on a machine without them, continue from the committed weights
(fresh optimizer, learning rate warmed up again; the README's log records it)::

    python plugins/mini/tools/train_diffusion.py --init-weights \
        plugins/mini/oodbench_mini/diffusion_weights/mini_diffusion.safetensors --max-minutes 90

On a GPU machine that has no copy of the offline data, pack the corpus here (43 MB), carry it
over, and train there with a larger batch into a fresh checkpoint folder::

    python plugins/mini/tools/train_diffusion.py --pack-corpus .carry/md-corpus.npz
    python plugins/mini/tools/train_diffusion.py --device cuda --corpus .carry/md-corpus.npz \
        --batch-size 256 --lr 1e-3 --resume-dir .carry/md-gpu --max-minutes 8 --export

On a CPU shared with other jobs, run it with ``OMP_WAIT_POLICY=PASSIVE``: spinning OpenMP
threads made a training step ~4x slower there (measured: 43 s vs 10 s per step).

The library code is in :mod:`oodbench_mini.train_diffusion` (the loop),
:mod:`oodbench_mini.diffusion_corpus`, :mod:`oodbench_mini.checkpoints` and
:mod:`oodbench_mini.diffusion_export`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import torch

from oodbench_mini.diffusion import DEFAULT_WEIGHTS, UNET_CONFIG
from oodbench_mini.diffusion_corpus import Corpus
from oodbench_mini.diffusion_export import TOOL, export, summarise
from oodbench_mini.train_diffusion import TrainConfig, default_resume_dir, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the mini-diffusion model (resumable).")
    parser.add_argument("--resume-dir", type=Path, default=None,
                        help=f"checkpoint folder (default {default_resume_dir()})")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--max-steps", type=int, default=100_000, help="total steps")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="budget of this run")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS,
                        help="where --export / --export-only write the weights")
    parser.add_argument("--export", action="store_true", help="export the weights after training")
    parser.add_argument("--export-only", action="store_true",
                        help="only export the newest checkpoint's EMA weights")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="train on a packed .npz (from --pack-corpus), not the catalogue")
    parser.add_argument("--pack-corpus", type=Path, default=None,
                        help="only write the 32x32 train corpus to this .npz and exit")
    parser.add_argument("--init-weights", type=Path, default=None,
                        help="with no checkpoint yet, continue from these exported weights "
                        "(e.g. the committed ones; fresh optimizer)")
    parser.add_argument("--command", default="", help="the training command for README.md")
    parser.add_argument("--note", default="", help="a free-text note for README.md")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.pack_corpus is not None:
        Corpus(args.data_dir, int(UNET_CONFIG["sample_size"])).pack(args.pack_corpus)
        print(f"packed corpus -> {args.pack_corpus}")
        return
    command = args.command
    if not command and not args.export_only:
        command = f"{TOOL} " + shlex.join(a for a in sys.argv[1:] if a != "--export")
    if not args.export_only:
        cfg = TrainConfig(seed=args.seed, batch_size=args.batch_size, lr=args.lr)
        state = train(
            args.resume_dir,
            args.max_steps,
            args.max_minutes,
            args.checkpoint_every,
            cfg,
            args.data_dir,
            log=lambda m: print(m, flush=True),
            device=args.device,
            packed_corpus=args.corpus,
            init_weights=args.init_weights,
        )
        print(json.dumps({k: v for k, v in summarise(state).items() if k != "sessions"}))
    if args.export or args.export_only:
        print(json.dumps(export(args.resume_dir, args.out, command, note=args.note), indent=1))


if __name__ == "__main__":
    main()

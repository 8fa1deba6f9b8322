"""SynOOD stage A / stage B training time on cached-style features (issue 10, "Numbers").

    python benchmarks/synood_training_throughput.py --device cuda           # 50k + 50k, D = 512
    python benchmarks/synood_training_throughput.py --device cpu --n 2000   # a CPU smoke run

Runs the plugin's own training functions (``oodbench_synood.train``) with the fine-tuners'
default hyperparameters (``ProjectionTuner`` / ``LabelTuner``: optimiser, schedule, epochs,
batch size, temperature, feature scale) on random unit vectors shaped like ImageNet with
ViT-B/16: ``--n`` ID features (``--classes`` classes, random labels) + ``--n`` synthetic
features, each mined to a random label of a ``--negatives``-label bank (NegLabel's ImageNet
bank: 10,499). As ``ProjectionTuner`` does, stage A trains on ID + synthetic features against
the ID prompts + the distinct mined labels; as ``LabelTuner`` does, stage B trains the distinct
mined labels on the synthetic features. Random data changes the losses, not the time per step.

``oodbench run`` trains on the CPU today (the cached features are CPU tensors and train.py
builds its modules on the CPU). ``--device cuda`` runs the same functions under a
``torch.device`` context, so modules and buffers are made on the GPU; the batch order is still
drawn on the CPU from the plugin's seeded generator (a CUDA ``randperm`` would refuse it).
Prints seconds per epoch, total seconds and samples/s per stage, and peak GPU memory on CUDA.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from oodbench_synood import train
from oodbench_synood.finetune import LabelTuner, ProjectionTuner


@dataclass
class EpochClock:
    """A training ``progress`` callback that notes the time at every epoch boundary."""

    batches_per_epoch: int
    sync: bool
    marks: list[float] = field(default_factory=list)

    def __call__(self, done: int, total: int) -> None:
        if done % self.batches_per_epoch == 0:
            # the loop reads each loss back (float(loss)), so the device is idle here anyway
            if self.sync:
                torch.cuda.synchronize()
            self.marks.append(time.perf_counter())


@contextmanager
def on_device(device: torch.device) -> Iterator[None]:
    """Make train.py's modules on ``device``; keep its batch permutations on the CPU."""
    if device.type == "cpu":
        yield  # exactly what `oodbench run` does
        return
    original = train._batches

    def cpu_batches(n: int, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
        # same draws as train._batches; an explicit device wins over the device context
        return list(torch.randperm(n, generator=generator, device="cpu").split(batch))

    train._batches = cpu_batches
    try:
        with torch.device(device):
            yield
    finally:
        train._batches = original


def _to(device: torch.device, tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(device)  # the same tensor on the CPU


def unit(rows: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(rows, dim, generator=generator), dim=-1)


def report(stage: str, start: float, clock: EpochClock, samples: int, loss: float,
           device: torch.device) -> None:
    ends = [start, *clock.marks]
    per_epoch = [b - a for a, b in itertools.pairwise(ends)]
    total = ends[-1] - start
    rate = samples * len(per_epoch) / total if total > 0 else float("nan")
    print(f"{stage}: {len(per_epoch)} epochs x {clock.batches_per_epoch} batches, "
          f"s/epoch {[round(s, 2) for s in per_epoch]}, total {total:.2f} s, "
          f"{rate:,.0f} samples/s, last-epoch loss {loss:.3f}")
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"{stage}: peak GPU memory {peak:,.0f} MiB")
        torch.cuda.reset_peak_memory_stats(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=50_000,
                        help="ID features, and as many synthetic ones (ImageNet: 50k + 50k)")
    parser.add_argument("--dim", type=int, default=512, help="feature width (ViT-B/16: 512)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--negatives", type=int, default=10_000,
                        help="negative label bank size (NegLabel on ImageNet: 10,499)")
    parser.add_argument("--epochs", type=int, default=0,
                        help="epochs of both stages (0 = the defaults: A 3, B 5)")
    parser.add_argument("--stages", default="ab", help="a, b or ab")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    a, b = ProjectionTuner(), LabelTuner()
    if args.epochs > 0:
        a.epochs = b.epochs = args.epochs

    g = torch.Generator().manual_seed(args.seed)
    id_feats, syn_feats = unit(args.n, args.dim, g), unit(args.n, args.dim, g)
    id_labels = torch.randint(args.classes, (args.n,), generator=g)
    id_text, bank = unit(args.classes, args.dim, g), unit(args.negatives, args.dim, g)
    mined = torch.randint(args.negatives, (args.n,), generator=g)
    # the fine-tuners train on the distinct mined labels only; position = row among them
    used, position = torch.unique(mined, return_inverse=True)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"{args.n:,} ID + {args.n:,} synthetic features of dim {args.dim}, "
          f"{args.classes} classes, {len(used):,} of {args.negatives:,} negatives mined")
    sync = device.type == "cuda"
    with on_device(device):
        if "a" in args.stages:
            feats = _to(device, torch.cat([id_feats, syn_feats]))
            targets = _to(device, torch.cat([id_labels, args.classes + position]))
            text = _to(device, torch.cat([id_text, bank[used]]))
            clock = EpochClock(-(-len(feats) // a.batch_size), sync)
            if sync:
                torch.cuda.synchronize()
            start = time.perf_counter()
            _, log = train.train_projection(
                feats, targets, text, a.epochs, a.batch_size, a.lr, a.weight_decay, a.min_lr,
                a.temperature, a.seed, train.default_scale(args.dim, a.feature_rms), clock)
            report(f"stage A (Adam lr {a.lr}, cosine, batch {a.batch_size})", start, clock,
                   len(feats), log.losses[-1], device)
        if "b" in args.stages:
            feats, targets = _to(device, syn_feats), _to(device, position)
            init = _to(device, bank[used])
            clock = EpochClock(-(-len(feats) // b.batch_size), sync)
            if sync:
                torch.cuda.synchronize()
            start = time.perf_counter()
            _, log = train.train_label_features(
                feats, targets, init, b.epochs, b.batch_size, b.lr, b.momentum,
                b.weight_decay, b.temperature, b.seed,
                train.default_scale(args.dim, b.feature_rms), clock)
            report(f"stage B (SGD lr {b.lr} m {b.momentum}, cosine, batch {b.batch_size})",
                   start, clock, len(feats), log.losses[-1], device)


if __name__ == "__main__":
    main()

"""Deterministic shards of an image list for multi-process feature encoding.

``torchrun`` / ``accelerate launch`` start WORLD_SIZE processes with RANK = 0..WORLD_SIZE-1.
:meth:`oodbench.features.FeatureStore.images` then splits a list into WORLD_SIZE contiguous
parts cut at multiples of the batch size, so every batch is one a single process would have
encoded; part i is rank i's. A part is written atomically to the cache on its own, and whoever
encodes a part holds its lock file (``<part>.lock``: rank, host and pid, touched after every
batch), so the others can tell a part in progress from one nobody works on.

Every process needs every feature afterwards (it scores all sets), so a process that finished
its own part waits for the others', and takes over any part nobody holds: one whose shard has
not started yet, has already exited (SynOOD's early synthesis shards stop with exit status 0
while the last one goes on alone, encoding the synthetic images), or died (same host: its pid
is gone; another host: no heartbeat for ``stale_after`` seconds; a restarted rank reclaims its
own earlier lock at once). Waiting therefore ends, and never on an error: the worst case is a
part encoded twice, with the same result, written atomically.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench.errors import OODBenchError
from oodbench.types import FeatureSet

STALE_AFTER_S = 600.0  # a holder on another host that is silent this long is taken to be dead
POLL_S = 1.0


def world() -> tuple[int, int]:
    """(rank, world size) from RANK / WORLD_SIZE as torchrun and accelerate set them; (0, 1)
    when WORLD_SIZE is unset or 1 (RANK is then not read: the single-process path)."""
    try:
        size = int(os.environ.get("WORLD_SIZE") or 1)
        rank = int(os.environ.get("RANK") or 0) if size > 1 else 0
    except ValueError as error:
        raise OODBenchError(f"RANK / WORLD_SIZE must be integers ({error}); unset them for a "
                            f"single process.") from None
    if size > 1 and not 0 <= rank < size:
        raise OODBenchError(f"RANK={rank} is outside 0..{size - 1} (WORLD_SIZE={size}); launch "
                            f"with torchrun or accelerate, or unset both for one process.")
    return (rank, size) if size > 1 else (0, 1)


def part_rows(count: int, parts: int, batch: int) -> list[range]:
    """``parts`` contiguous ranges covering 0..count, cut at multiples of ``batch`` (a part
    may be empty when there are fewer batches than parts)."""
    batches = -(-count // max(1, batch))
    cuts = [min(count, batches * i // parts * batch) for i in range(parts + 1)]
    return [range(a, b) for a, b in itertools.pairwise(cuts)]


def join(parts: list[FeatureSet]) -> FeatureSet:
    """The parts of one list, in order, as one set (rows, labels, paths and skips in order)."""
    return FeatureSet(torch.cat([p.features for p in parts]),
                      np.concatenate([p.labels for p in parts]).astype(np.int64),
                      [path for p in parts for path in p.paths],
                      [skip for p in parts for skip in p.skipped])


class PartLock:
    """The lock of one part: who encodes it. Created with O_EXCL, so one claim wins."""

    def __init__(self, path: Path, rank: int, stale_after: float = STALE_AFTER_S) -> None:
        self.path, self.rank, self.stale_after = Path(path), rank, stale_after
        self.me = {"rank": rank, "host": socket.gethostname(), "pid": os.getpid()}

    def holder(self) -> dict[str, Any] | None:
        """The live holder's rank/host/pid, or None when nobody (alive) holds the part."""
        try:
            held = json.loads(self.path.read_text())
            age = time.time() - self.path.stat().st_mtime
        except (OSError, ValueError):
            return None  # no lock, or one being written: the claim's O_EXCL decides
        if held.get("rank") == self.rank and held.get("pid") != self.me["pid"]:
            return None  # this rank's previous life: a restarted shard redoes its own part
        if held.get("host") == self.me["host"] and not _alive(int(held.get("pid", -1))):
            return None
        return held if age < self.stale_after else None

    def claim(self) -> bool:
        if self.path.exists():
            if self.holder() is not None:
                return False
            self.path.unlink(missing_ok=True)  # a dead holder's lock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False  # another process claimed it just now
        with os.fdopen(fd, "w") as handle:
            json.dump(self.me, handle)
        return True

    def beat(self) -> None:
        """Heartbeat: the holder is alive and working (called after every batch)."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def release(self) -> None:
        try:
            if json.loads(self.path.read_text()) == self.me:  # not a taker-over's lock
                self.path.unlink()
        except (OSError, ValueError):
            pass


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True

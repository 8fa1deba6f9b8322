"""The processes of one launch (``accelerate launch`` / ``torchrun``) and how work splits across
them, on Hugging Face accelerate.

A launcher starts WORLD_SIZE copies of one command. Long work (encoding an image list,
synthesizing images) splits across them: :meth:`Processes.share` gives each process one
contiguous part of a list, cut at multiples of a batch size (accelerate's
``split_between_processes`` over the list's batches), so every batch is one a single process
would have run and the results are byte-identical to a single process's. Each process writes
its part as a content-keyed atomic artefact, then :meth:`Processes.gather` (accelerate's
``gather_object``) hands every process every part: all of them continue with the full result,
and only the main process (:attr:`Processes.is_main`) writes what the whole run produces (the
joined feature entry, the result record). A restarted launch finds the parts already written
and redoes only the missing ones.

Collective steps (an image list's encoding, a synthesis) must be reached by every process in
the same order: all processes run the same stages, and whether an image list is already cached
is decided by all of them together (:meth:`Processes.agree`), so a process that finds an entry
another one has just written does not go its own way.

Without a launcher (WORLD_SIZE unset or 1) accelerate is not imported and nothing is split: the
single-process path, with the same cache keys and bytes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar

import torch

from oodbench.errors import MissingDataError, OODBenchError

T = TypeVar("T")
# what torchrun / accelerate launch (and accelerate's MPI launch on CPUs) set in every process
WORLD_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_size() -> int:
    """How many processes a launcher started (1: no launcher, the single-process path)."""
    for name in WORLD_VARS:
        value = os.environ.get(name)
        if not value:
            continue
        try:
            size = int(value)
        except ValueError:
            raise OODBenchError(f"{name}={value!r} is not an integer; launch with torchrun or "
                                f"accelerate launch, or unset it for one process.") from None
        if size > 1:
            return size
    return 1


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place in the launch: ``index`` of ``count``; ``state`` is accelerate's
    ``PartialState`` when ``count`` > 1 (None for a single process)."""

    index: int = 0
    count: int = 1
    state: Any = None

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def share(self, total: int, batch: int) -> range:
        """This process's rows of a list of ``total`` items processed in batches of ``batch``:
        a contiguous run of whole batches (empty when there are fewer batches than processes);
        all of them for a single process."""
        if self.count == 1:
            return range(total)
        batch = max(1, batch)
        with self.state.split_between_processes(list(range(0, total, batch))) as starts:
            mine = list(starts)
        return range(mine[0], min(total, mine[-1] + batch)) if mine else range(0)

    def gather(self, item: T) -> list[T]:
        """Every process's ``item``, in process order, on every process."""
        if self.count == 1:
            return [item]
        from accelerate.utils import gather_object

        return list(gather_object([item]))

    def agree(self, what: str, flag: bool) -> bool:
        """Whether ``flag`` holds in every process. ``what`` names the step: processes that
        reached different steps (a bug) stop with one line instead of pairing them up."""
        answers = self.gather((what, bool(flag)))
        steps = {step for step, _ in answers}
        if len(steps) > 1:
            raise OODBenchError(f"The processes of this launch reached different steps "
                                f"({', '.join(sorted(steps))[:200]}); every process must run "
                                f"the same stages. Rerun with one process to continue.")
        return all(answer for _, answer in answers)

    def device(self, run_device: torch.device) -> torch.device:
        """The device this process computes on: accelerate's device for the process (its own
        GPU, cuda:LOCAL_RANK) on a CUDA run without a device index; otherwise ``run_device``
        (CPU runs stay on the CPU, an explicit ``--device cuda:i`` wins)."""
        if self.count == 1 or run_device.type != "cuda" or run_device.index is not None:
            return run_device
        return torch.device(self.state.device)


SINGLE = Processes()


def processes(run_device: torch.device | str = "cpu") -> Processes:
    """The processes of this launch; :data:`SINGLE` without a launcher. Under one, the first
    call sets up accelerate's ``PartialState`` (gloo on the CPU, NCCL for a CUDA run)."""
    size = launched_size()
    if size == 1:
        return SINGLE
    try:
        from accelerate import PartialState
    except ImportError:
        raise MissingDataError(f"This run was started by a launcher ({size} processes) but "
                               f"accelerate is not installed: pip install accelerate (or "
                               f"'oodbench[diffusion]'), or run one process.") from None
    state = PartialState(cpu=torch.device(run_device).type != "cuda")
    if state.num_processes != size:
        raise OODBenchError(f"The launcher started {size} processes but accelerate sees "
                            f"{state.num_processes} (distributed type "
                            f"{state.distributed_type}); launch with torchrun or accelerate "
                            f"launch --multi_gpu, or run one process.")
    return Processes(state.process_index, state.num_processes, state)


def process_device(run_device: torch.device) -> torch.device:
    """The device this process of the launch computes on (see :meth:`Processes.device`)."""
    return processes(run_device).device(run_device)

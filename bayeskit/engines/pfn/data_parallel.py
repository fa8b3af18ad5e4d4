"""Data-parallel training over the processes of torch.distributed (gloo on CPU, NCCL on CUDA).

Each step's batch is cut into ``S`` equal shards (rows ``s B/S … (s+1) B/S − 1``; S = the training's
``shards``, or the process count). Process p of P computes the gradient of its contiguous `block` of
shards, one shard at a time (each shard's loss is the mean over its rows), and `reduce` gathers every
shard's flattened gradient and loss on every process and sums them **in shard order**, then divides
by S. So the step's gradient is the mean of the S shard gradients, with the same float operations
whatever the number of processes: a run with S shards gives the same bits on 1, 2 or S processes
(on one device type and thread count), and a checkpoint written by one layout resumes on another.
(torch's DDP would sum in the order of its ring: the same bits for 2 processes, not for 4.)

With S = 1 this is the plain full-batch step. With S > 1 the mean of S shard means equals the
full-batch mean up to float rounding (about 1e-7 relative in float32).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch

from ...core.distributed import block
from ...core.errors import ConfigError


@dataclass(frozen=True)
class Layout:
    """Where this process stands: ``rank`` of ``world`` processes, ``shards`` per batch, of which it
    computes ``mine`` (a range of shard indices)."""

    rank: int
    world: int
    shards: int

    @property
    def mine(self) -> range:
        return block(self.shards, self.rank, self.world)

    @property
    def root(self) -> bool:
        return self.rank == 0


def requested(environ=None) -> bool:
    """Whether this process is one of several: a torch process group is running with more than one
    process, or the launcher's variables (``WORLD_SIZE`` > 1 and ``MASTER_ADDR``) say so."""
    import torch.distributed as dist

    environ = os.environ if environ is None else environ
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    return int(environ.get("WORLD_SIZE", "1") or 1) > 1 and bool(environ.get("MASTER_ADDR"))


def join(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this process's device), starting the process group when it is not running
    (env://: the launcher's ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``; gloo on a CPU,
    NCCL on CUDA). On CUDA each process takes the GPU ``LOCAL_RANK`` (modulo the GPUs it sees)
    unless the device names one. One process (nothing requested): (0, 1, device)."""
    import torch.distributed as dist

    if not requested():
        return 0, 1, device
    if device.type == "cuda" and device.index is None:
        local = int(os.environ.get("LOCAL_RANK", "0") or 0)
        device = torch.device("cuda", local % torch.cuda.device_count())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    return dist.get_rank(), dist.get_world_size(), device


def _leave():
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def layout(rank: int, world: int, shards: int | None, batch_size: int) -> Layout:
    """The step's layout; a `ConfigError` when the batch does not cut into equal shards."""
    count = world if shards is None else shards
    if batch_size % count:
        if shards is None:
            raise ConfigError(f"`batch_size` ({batch_size}) must be a multiple of the number of processes "
                              f"({world}): each process trains on an equal share of every batch (or set "
                              f"`shards` to a divisor of the batch size)")
        raise ConfigError(f"`batch_size` ({batch_size}) must be a multiple of `shards` ({shards})")
    return Layout(rank, world, count)


def reduce(layout: Layout, parameters, grads: list[torch.Tensor], losses: list[torch.Tensor]) -> torch.Tensor:
    """Set every parameter's gradient to the mean of all shards' gradients and return the mean loss.

    ``grads``: this process's flattened shard gradients (one per shard of ``layout.mine``, in order),
    ``losses`` their losses (0-d). Collective: every process calls it once per step."""
    import torch.distributed as dist

    rows = [torch.cat([g, loss.detach().reshape(1).to(g.dtype)]) for g, loss in zip(grads, losses, strict=True)]
    if layout.world > 1:
        width = -(-layout.shards // layout.world)  # the largest block: every process sends as many rows
        size = rows[0].numel() if rows else _size(parameters) + 1
        mine = torch.zeros(width, size, dtype=parameters[0].dtype, device=parameters[0].device)
        for i, r in enumerate(rows):
            mine[i] = r
        parts = [torch.empty_like(mine) for _ in range(layout.world)]
        dist.all_gather(parts, mine)
        rows = [parts[p][i] for p in range(layout.world)
                for i in range(len(block(layout.shards, p, layout.world)))]
    total = rows[0]
    for r in rows[1:]:  # in shard order: the same operations on every layout
        total = total + r
    total = total / layout.shards
    offset = 0
    for p in parameters:
        p.grad = total[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()
    return total[-1]


def _size(parameters) -> int:
    return sum(p.numel() for p in parameters)


def flat_grad(parameters) -> torch.Tensor:
    """The parameters' gradients as one vector (zeros where a parameter got none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters])


def barrier(layout: Layout) -> None:
    if layout.world > 1:
        import torch.distributed as dist

        dist.barrier()

"""Data parallel training with torch.distributed: one process per device, gradients averaged.

Launched by `torchrun` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); without it
everything here is a no-op for a single process. Backend: gloo on CPU, nccl on CUDA.

We average gradients by hand (one flat all-reduce after backward) rather than wrapping the model
in DistributedDataParallel: the text encoder is skipped entirely when every prompt in a local
batch is dropped, which DDP would have to be told about, and one visible all-reduce is easy to
check (tests/test_train.py runs 2 processes and checks the replicas stay identical).
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Iterable

import attrs
import torch
import torch.distributed as dist


@attrs.frozen
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str, timeout_seconds: float = 600.0) -> Dist:
    """Join the process group if launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(0, 1, device)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_seconds))
    return Dist(rank, world, device)


def teardown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_parameters(params: Iterable[torch.Tensor], d: Dist) -> None:
    """Every rank starts from rank 0's weights (they are seeded alike anyway; this makes sure)."""
    if d.world > 1:
        for p in params:
            dist.broadcast(p.data, src=0)


def average_gradients(params: list[torch.nn.Parameter], d: Dist) -> None:
    """Give every parameter a gradient (zeros if unused) and, with several ranks, their mean."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if d.world == 1:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= d.world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p))
        offset += n


def mean_scalar(value: float, d: Dist) -> float:
    """The mean of a number over ranks (every rank must call this at the same step)."""
    if d.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / d.world


def any_rank(flag: bool, d: Dist) -> bool:
    """True on every rank if it is True on any (so all ranks stop at the same step)."""
    if d.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather(obj: Any, d: Dist) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank (small JSON-like objects)."""
    if d.world == 1:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out

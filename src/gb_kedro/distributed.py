"""Data-parallel processes on one machine (``torch.distributed``): starting the ranks, sharing batches out,
averaging gradients and gathering rows with gradient.

The training loop (:mod:`gb_kedro.training`) and the contrastive losses (:mod:`gb_kedro.losses`) call these; this
module knows nothing of either. On CPU the ranks talk over gloo, on CUDA over nccl (``backend: auto``), as
open_clip's ``distributed.py`` falls back to gloo -- which is how it is tested without GPUs.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


def in_group() -> bool:
    """Inside an initialised process group (a rank started by :func:`spawn`, ``torchrun`` ...)."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of ranks); (0, 1) outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if in_group() else (0, 1)


def share(batch: list[int], rank: int, world: int) -> list[int]:
    """Rank ``rank``'s contiguous share of a global batch (equal shares: a remainder of < ``world`` samples is
    left out, so every rank gathers the same number of rows). Contiguous shares keep a P x K layout: the
    gathered rows are the global batch in its order."""
    per = len(batch) // world
    return batch[rank * per : (rank + 1) * per]


def average_gradients(model: torch.nn.Module, world: int) -> None:
    """All-reduce (mean) every gradient across ranks, in one flat buffer."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_over_ranks(sums: dict[str, float], count: int) -> tuple[dict[str, float], int]:
    """Per-key sums and a sample count added up over every rank (every rank gets the totals)."""
    keys = sorted(sums)
    values = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64)
    dist.all_reduce(values)
    return dict(zip(keys, values[:-1].tolist(), strict=True)), int(values[-1].item())


class _GatherRows(torch.autograd.Function):
    """All-gather of rows with gradient: backward sums every rank's gradient on the global batch (all-reduce)
    and keeps this rank's rows. Plain synchronous collectives (gloo and nccl)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` from every rank, in rank order (the global batch), with gradient flowing back to each
    rank's own rows; ``x`` itself outside a process group of several ranks. Every rank must pass the same
    number of rows. Labels (no gradient) go through the same forward."""
    if not in_group() or dist.get_world_size() == 1:
        return x
    return _GatherRows.apply(x)


def backend_for(name: str) -> str:
    """``auto``: nccl on CUDA, gloo on CPU; else the name given."""
    if name != "auto":
        return name
    return "nccl" if torch.cuda.is_available() else "gloo"


def free_port() -> int:
    """A free TCP port on the loopback interface (the rendezvous of the ranks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(fn: Callable[..., Any], args: tuple, world: int, backend: str) -> Any:
    """``fn(*args)`` on ``world`` processes of this machine, each a rank of one process group
    (``torch.multiprocessing``; gloo on CPU, nccl on CUDA); rank 0's return value comes back here.

    ``fn`` and ``args`` travel to the ranks with cloudpickle (closures and local classes included); rank 0's
    result travels back through a temporary file (``torch.save``)."""
    import cloudpickle

    payload = cloudpickle.dumps((fn, args))
    with tempfile.TemporaryDirectory(prefix="gb_kedro_ddp_") as tmp:
        out = Path(tmp) / "rank0.pt"
        torch.multiprocessing.spawn(
            _rank_main, args=(world, backend_for(backend), free_port(), payload, str(out)), nprocs=world, join=True
        )
        return torch.load(out, map_location="cpu", weights_only=False)


def _rank_main(rank: int, world: int, backend: str, port: int, payload: bytes, out: str) -> None:
    """One rank: join the group, run the function and (rank 0) hand its result back through ``out``."""
    import cloudpickle

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        fn, args = cloudpickle.loads(payload)
        result = fn(*args)
        if rank == 0:
            tmp = Path(out).with_suffix(".tmp")
            torch.save(result, tmp)
            os.replace(tmp, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()

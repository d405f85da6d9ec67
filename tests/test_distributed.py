"""Data-parallel training with torch.distributed (gloo, 2 processes on this CPU): the same loss and gradients
as one process on the concatenated batch, contrastive losses included (embeddings gathered with gradient);
a short training run ends with the same weights; only rank 0 writes checkpoints and logs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from gb_kedro.config import DistributedSettings
from gb_kedro.distributed import average_gradients, free_port
from gb_kedro.losses import batch_hard_triplet, multi_positive_info_nce
from gb_kedro.training import _fit, fit
from tests.helpers import train_config

N, D, E = 16, 6, 4


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    labels = torch.arange(N) % 4
    target = torch.randn(N, E, generator=g)
    return x, labels, target


def _model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.Tanh(), torch.nn.Linear(8, E))


class ToyStep:
    """Deterministic: a per-sample loss (mean over the rank's rows) plus two batch-level losses."""

    def __call__(self, model, batch, device, gather=False):
        x, labels, target = (t.to(device) for t in batch)
        z = model(x)
        mse = F.mse_loss(z, target)
        contrastive = multi_positive_info_nce(z, labels, 0.5, gather) + batch_hard_triplet(
            z, labels, 0.3, gather=gather
        )
        return {"loss": mse + contrastive, "mse": mse, "contrastive": contrastive}


def _init(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def _rank_loss_and_grads(rank: int, world: int, port: int, out: str) -> None:
    _init(rank, world, port)
    try:
        x, labels, target = _data()
        per = N // world
        share = slice(rank * per, (rank + 1) * per)
        model = _model()
        metrics = ToyStep()(model, (x[share], labels[share], target[share]), "cpu", True)
        metrics["loss"].backward()
        average_gradients(model, world)
        loss = metrics["loss"].detach().clone()
        dist.all_reduce(loss)
        if rank == 0:
            torch.save({"loss": loss / world, "grads": [p.grad for p in model.parameters()]}, out)
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_loss_and_gradients_of_the_concatenated_batch(tmp_path):
    out = tmp_path / "rank0.pt"
    torch.multiprocessing.spawn(_rank_loss_and_grads, args=(2, free_port(), str(out)), nprocs=2, join=True)
    two = torch.load(out, weights_only=False)
    model = _model()
    metrics = ToyStep()(model, _data(), "cpu")
    metrics["loss"].backward()
    torch.testing.assert_close(two["loss"], metrics["loss"].detach(), rtol=1e-5, atol=1e-6)
    for got, want in zip(two["grads"], [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def _config(world: int):
    base = train_config(epochs=3, batch_size=8, warmup_epochs=0, patience=0, grad_clip=0.0, num_workers=0, device="cpu")
    return dataclasses.replace(base, distributed=DistributedSettings(world_size=world, backend="gloo"))


def test_a_short_run_on_two_processes_ends_with_the_weights_of_one(tmp_path):
    data = TensorDataset(*_data())
    one = _model()
    fit(one, data, None, ToyStep(), _config(1))
    two = _model()
    epochs = []
    result = fit(
        two, data, None, ToyStep(), _config(2), checkpoint_dir=tmp_path, on_epoch=lambda e, r: epochs.append(e)
    )
    for a, b in zip(one.state_dict().values(), two.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert epochs == [0, 1, 2]  # logged once per epoch, in this process
    assert (tmp_path / "last.pt").exists() and result["epochs_run"] == 3
    # resume: the finished checkpoint is found by every rank, nothing is retrained
    again = fit(_model(), data, None, ToyStep(), _config(2), checkpoint_dir=tmp_path)
    assert again["epochs_run"] == 0


def _rank_fit(rank: int, world: int, port: int, root: str) -> None:
    _init(rank, world, port)
    try:
        folder = Path(root) / f"rank{rank}"
        marks = []
        _fit(
            _model(),
            TensorDataset(*_data()),
            None,
            ToyStep(),
            _config(world),
            folder,
            on_epoch=lambda e, r: marks.append(e),
            desc="t",
            fingerprint=None,
            batch_sampler=None,
        )
        (Path(root) / f"logged{rank}.txt").write_text(str(len(marks)))
        dist.barrier()  # as gb_kedro.distributed's ranks end: no rank tears gloo down while another still uses it
    finally:
        dist.destroy_process_group()


def test_only_rank_zero_writes_checkpoints_and_logs(tmp_path):
    torch.multiprocessing.spawn(_rank_fit, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "rank0" / "last.pt").exists() and not (tmp_path / "rank1").exists()
    assert (tmp_path / "logged0.txt").read_text() == "3" and (tmp_path / "logged1.txt").read_text() == "0"

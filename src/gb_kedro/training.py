"""One training loop for every encoder of the project.

AdamW (no weight decay on biases, norms and tokens; optional groups at a share of the rate), linear warm-up then
cosine decay per step, gradient clipping, a validation set with early stopping (best weights restored at the end),
a checkpoint after every epoch and resume from it, ``device: auto``, bf16 autocast on CUDA, seeded and
reproducible: each epoch re-seeds from ``(seed, epoch)``, so a run killed after epoch k and resumed from its
checkpoint ends with the same weights as an uninterrupted run. Several processes: :mod:`gb_kedro.distributed`.

A dataset with a ``collate`` method makes its batches itself (e.g. the whole batch's augmentation at once). A step
is ``step(model, batch, device, gather) -> {"loss": ..., other metrics}``; ``gather`` is True when the
batch is one rank's share of a global batch (training with several ranks), so its batch-level losses gather the
rows of every rank, and False otherwise (one process, and every validation pass).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gb_kedro import distributed
from gb_kedro.config import TrainSettings
from gb_kedro.models.device import resolve_device

logger = logging.getLogger(__name__)

StepFn = Callable[[torch.nn.Module, object, torch.device, bool], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainConfig(TrainSettings):
    """The schedule of one training stage (a ``train`` section of ``conf/base``: :class:`TrainSettings`) plus the
    stage's seed and device. No defaults here: the values come from ``conf/base`` (:meth:`of`)."""

    KEY: ClassVar[str] = "<stage>.train"
    seed: int
    device: str

    @classmethod
    def of(cls, settings: TrainSettings, seed: int, device: str) -> TrainConfig:
        """From a stage's :class:`~gb_kedro.config.TrainSettings` (extra stage fields ignored)."""
        values = {f.name: getattr(settings, f.name) for f in fields(TrainSettings)}
        return cls(**values, seed=int(seed), device=str(device))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def param_groups(
    model: torch.nn.Module, weight_decay: float, lr: float, lr_scale: dict[str, float] | None = None
) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms, tokens and position embeddings; parameters under a
    prefix of ``lr_scale`` (``{"wsi_encoder.": 0.1}``) train at that share of ``lr``."""
    scales = lr_scale or {}
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = not (p.ndim < 2 or name.endswith("token") or "pos_embed" in name)
        scale = next((v for prefix, v in scales.items() if name.startswith(prefix)), 1.0)
        groups.setdefault((decay, scale), []).append(p)
    return [
        {"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": lr * scale}
        for (decay, scale), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1]))
    ]


def _lr_lambda(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(
    model: torch.nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    step: StepFn,
    config: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    desc: str = "train",
    fingerprint: str | None = None,
    batch_sampler: Callable[[int], object] | None = None,
    lr_scale: dict[str, float] | None = None,
) -> dict:
    """Train ``model`` with ``step(model, batch, device, gather) -> {"loss": ..., other metrics}``.

    With ``config.distributed.world_size`` > 1, ``world_size`` processes are started on this machine
    (:func:`gb_kedro.distributed.spawn`; gloo on CPU, nccl on CUDA) and each trains on its contiguous share of
    every global batch (:func:`_fit`); the final weights come back from rank 0, and ``on_epoch`` is called here,
    in this process (the MLflow run kedro-mlflow opened), once per epoch. Inside an existing process group (e.g.
    under ``torchrun``) the loop runs as that group's rank directly.

    Args:
        checkpoint_dir: ``last.pt`` is written there after every epoch; if it exists when ``fit`` starts,
            training resumes from it (a finished run returns at once).
        on_epoch: called with ``(epoch, metrics)`` after each epoch's checkpoint (MLflow logging).
        fingerprint: identifies the run (configs + data); a checkpoint with another fingerprint is
            ignored (started afresh), so a changed config or dataset never resumes a stale run.
        batch_sampler: ``batch_sampler(epoch)`` -> a batch sampler for the training loader (e.g. P lineages
            x K patches); default: shuffled batches of ``batch_size``.
        lr_scale: ``{parameter-name prefix: share of the rate}`` (e.g. pretrained encoders fine-tuned gently).

    Returns:
        ``history`` (one dict of mean metrics per epoch, ``train/*`` and ``val/*``), ``best_epoch``,
        ``stopped_early``, ``device``. The model holds the best validation weights (the last ones
        without a validation set).
    """
    args = (model, train_set, val_set, step, config, checkpoint_dir)
    options = {"desc": desc, "fingerprint": fingerprint, "batch_sampler": batch_sampler, "lr_scale": lr_scale}
    if config.distributed.world_size > 1 and not distributed.in_group():
        return _launch(*args, on_epoch=on_epoch, **options)
    return _fit(*args, on_epoch=on_epoch, **options)


def _fit(
    model: torch.nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    step: StepFn,
    config: TrainConfig,
    checkpoint_dir: str | Path | None,
    on_epoch: Callable[[int, dict], None] | None,
    desc: str,
    fingerprint: str | None,
    batch_sampler: Callable[[int], object] | None,
    lr_scale: dict[str, float] | None = None,
) -> dict:
    """The training loop of one process (rank ``r`` of ``W`` inside a process group, else the only one)."""
    rank, world = distributed.rank_and_world()
    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    model.to(device)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay, config.lr, lr_scale), lr=config.lr)
    steps_per_epoch = (
        len(batch_sampler(0)) if batch_sampler is not None else max(1, math.ceil(len(train_set) / config.batch_size))
    )
    if world > 1 and batch_sampler is None:  # the default shuffled batches, built explicitly to be shared out
        batch_sampler = _shuffled_batches(len(train_set), config)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total, int(config.warmup_epochs * steps_per_epoch), config.min_lr_ratio)
    )
    ckpt = Path(checkpoint_dir) / "last.pt" if checkpoint_dir else None
    state = _resume(ckpt, fingerprint, model, optimizer, scheduler, device, desc)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    bar = tqdm(
        range(state["epoch"], config.epochs), desc=desc, unit="epoch", leave=False, disable=True if rank else None
    )
    first_epoch = state["epoch"]
    for epoch in bar:
        if state["done"]:
            break
        seed_everything(config.seed * 1_000_003 + epoch + 104_729 * rank)  # ranks draw different masks/augmentations
        if hasattr(step, "set_epoch"):  # epoch-dependent losses (e.g. a warm-up phase)
            step.set_epoch(epoch)
        tic = time.perf_counter()
        loader = _epoch_loader(train_set, config, epoch, batch_sampler, rank, world)
        record = _train_epoch(model, loader, step, optimizer, scheduler, config, autocast, device, world)
        record["time/samples_per_s"] = record["time/train_samples"] / max(time.perf_counter() - tic, 1e-9)
        if val_set is not None and len(val_set):
            record.update({f"val/{k}": v for k, v in evaluate(model, val_set, step, config, device).items()})
            _track_validation(state, record["val/loss"], epoch, model, config)
        record["time/epoch_s"] = time.perf_counter() - tic  # training and validation (the run's time profile)
        record["epoch"] = epoch
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if state["epoch"] >= config.epochs:
            state["done"] = True
        if state["done"] and state["best_state"] is not None and config.keep == "best":
            model.load_state_dict(state["best_state"])
        if ckpt is not None and rank == 0:  # rank 0 alone writes checkpoints
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "state": state,
                },
                ckpt,
            )
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k in ("train/loss", "val/loss")})
        if bar.disable:  # not a terminal: no bar; the epochs are in the history and MLflow, here at debug level
            logger.debug(
                "%s epoch %d/%d: %s",
                desc,
                epoch + 1,
                config.epochs,
                {k: round(v, 4) for k, v in record.items() if "loss" in k},
            )
        if on_epoch is not None and rank == 0:
            on_epoch(epoch, record)
    bar.close()
    if state["best_state"] is not None and config.keep == "best":
        model.load_state_dict(state["best_state"])
    return {
        "history": state["history"],
        "best_epoch": state["best_epoch"],
        "stopped_early": bool(state["epoch"] < config.epochs),
        "epochs_run": state["epoch"] - first_epoch,  # 0: a finished checkpoint was resumed, nothing was trained
        "device": str(device),
        "config": asdict(config),
    }


def kept_epoch(result: dict, keep: str) -> str:
    """Which weights a finished :func:`fit` returned, in words (for the stage's log line)."""
    epochs = len(result["history"])
    if keep == "best" and result["best_epoch"] >= 0:
        return f"kept the lowest validation loss, epoch {result['best_epoch'] + 1} of {epochs}"
    reason = "no validation set: " if keep == "best" else ""
    return f"{reason}kept the last epoch ({epochs})"


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, dataset: Dataset, step: StepFn, config: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Mean metrics of ``step`` over ``dataset`` in eval mode, with a fixed seed (same masks every epoch)."""
    model.eval()
    cpu_state = torch.get_rng_state()
    torch.manual_seed(config.seed)
    sums: dict[str, float] = {}
    count = 0
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=config.num_workers,
        collate_fn=getattr(dataset, "collate", None),
    )
    for batch in loader:
        # every rank scores the whole validation set, its own rows only: the same figures, the same decisions
        metrics = step(model, batch, device, False)
        n = _batch_len(batch)
        count += n
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
    torch.set_rng_state(cpu_state)
    train_mode(model)
    return {k: v / max(count, 1) for k, v in sums.items()}


def train_mode(model: torch.nn.Module) -> torch.nn.Module:
    """``model.train()``, but a batch norm whose own parameters are frozen stays in eval mode: a frozen encoder
    (e.g. a conv stem of a Table 1 row with ``freeze_encoders``) keeps its running statistics and normalises as it
    was trained, instead of adapting to the batches of another training."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in module.parameters(recurse=False)
        ):
            module.eval()
    return model


def _batch_len(batch) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0])


def _resume(ckpt: Path | None, fingerprint: str | None, model, optimizer, scheduler, device, desc: str) -> dict:
    """The loop state: fresh, or restored (with model, optimizer and scheduler) from a checkpoint of the same run."""
    state = {
        "epoch": 0,
        "history": [],
        "best": float("inf"),
        "best_epoch": -1,
        "bad_epochs": 0,
        "done": False,
        "best_state": None,
        "fingerprint": fingerprint,
    }
    saved = torch.load(ckpt, map_location=device, weights_only=False) if ckpt is not None and ckpt.exists() else None
    if saved is not None and saved["state"].get("fingerprint") != fingerprint:
        logger.info("%s: checkpoint %s belongs to another run (config or data changed): starting afresh", desc, ckpt)
        return state
    if saved is None:
        return state
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    logger.info("%s: resumed from %s at epoch %d", desc, ckpt, saved["state"]["epoch"])
    return saved["state"]


def _epoch_loader(
    train_set: Dataset, config: TrainConfig, epoch: int, batch_sampler, rank: int = 0, world: int = 1
) -> DataLoader:
    collate = getattr(train_set, "collate", None)  # a dataset that makes its batches itself (batched augmentation)
    if batch_sampler is not None:
        batches = batch_sampler(epoch)
        if world > 1:
            batches = [distributed.share(list(b), rank, world) for b in batches]
        return DataLoader(train_set, batch_sampler=batches, num_workers=config.num_workers, collate_fn=collate)
    return DataLoader(
        train_set,
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(config.seed + epoch),
        collate_fn=collate,
    )


def _train_epoch(
    model, loader, step: StepFn, optimizer, scheduler, config: TrainConfig, autocast, device, world: int = 1
) -> dict:
    """One pass over ``loader``: the sample-weighted mean of every metric (``train/*``, over all ranks) and the
    last ``lr``. With several ranks, gradients are averaged across them before clipping and the step."""
    train_mode(model)
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        with autocast:
            metrics = step(model, batch, device, world > 1)
        optimizer.zero_grad(set_to_none=True)
        metrics["loss"].backward()
        if world > 1:
            distributed.average_gradients(model, world)
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        n = _batch_len(batch)
        count += n
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * n
    if world > 1:
        sums, count = distributed.sum_over_ranks(sums, count)
    record = {f"train/{k}": v / max(count, 1) for k, v in sums.items()}
    record["lr"] = scheduler.get_last_lr()[0]
    record["time/train_samples"] = count
    return record


def _track_validation(state: dict, val_loss: float, epoch: int, model, config: TrainConfig) -> None:
    """Keep the best weights; mark the run done after ``patience`` epochs without improvement."""
    if val_loss < state["best"] - 1e-6:
        state.update(best=val_loss, best_epoch=epoch, bad_epochs=0, best_state=copy.deepcopy(model.state_dict()))
    else:
        state["bad_epochs"] += 1
    if config.patience and state["bad_epochs"] >= config.patience:
        state["done"] = True


def _shuffled_batches(n: int, config: TrainConfig) -> Callable[[int], list[list[int]]]:
    """The default loader's batches (the same permutation as ``DataLoader(shuffle=True)`` with the epoch's
    generator), as explicit index lists that ranks can share out."""

    def batches(epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(config.seed + epoch)
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # the DataLoader draws its base seed first
        order = torch.randperm(n, generator=generator).tolist()
        return [order[i : i + config.batch_size] for i in range(0, n, config.batch_size)]

    return batches


def _rank_fit(model, train_set, val_set, step, config: TrainConfig, checkpoint_dir, options: dict) -> dict:
    """One rank's training (:func:`gb_kedro.distributed.spawn` runs it on every rank): rank 0's weights and result."""
    result = _fit(model, train_set, val_set, step, config, checkpoint_dir, on_epoch=None, **options)
    return {"model": model.cpu().state_dict(), "result": result}


def _launch(model, train_set, val_set, step, config: TrainConfig, checkpoint_dir, on_epoch, **options) -> dict:
    """Run :func:`_fit` on ``world_size`` ranks; rank 0's weights and result come back here, and its epochs are
    logged from this process (the run kedro-mlflow opened)."""
    saved = distributed.spawn(
        _rank_fit,
        (model.cpu(), train_set, val_set, step, config, checkpoint_dir, options),
        config.distributed.world_size,
        config.distributed.backend,
    )
    model.load_state_dict(saved["model"])
    result = saved["result"]
    if on_epoch is not None:
        for record in result["history"][len(result["history"]) - result["epochs_run"] :]:
            on_epoch(record["epoch"], record)
    return result

"""Training and evaluating the WSI patch encoder (paper 2.3, eq. 6).

The ViT's CLS embedding (L2-normalised) is trained with a batch-hard triplet loss across lineages on
batches of P lineages x K patches. Batch-hard triplet from scratch can collapse (every embedding equal,
loss = margin), so the first ``warmup_epochs`` train a lineage softmax head instead (cross-entropy); the
triplet stage then starts from separated embeddings (``ce_weight`` keeps some softmax after warm-up). The
mean distance between a batch's embeddings (``spread``) is logged to show there is no collapse.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from gb_kedro.baselines import colour_histogram_features
from gb_kedro.config import SplitConfig, WSIEncodingConfig
from gb_kedro.evaluation import confusion_figure, nearest_neighbour_eval
from gb_kedro.losses import batch_hard_triplet
from gb_kedro.models.vit import VisionTransformer, vit
from gb_kedro.provenance import made_with
from gb_kedro.slides.augment import Augment
from gb_kedro.slides.patches import decoded_patches, training_view, window_batches
from gb_kedro.slides.sampling import PKSampler
from gb_kedro.tracking import git_commit, log_evaluation, log_metrics, log_torch_model, nested_run
from gb_kedro.training import TrainConfig, fingerprint, fit, resolve_device

logger = logging.getLogger(__name__)


class PatchTensorDataset(Dataset):
    """Decoded patches + integer labels, augmented on the fly: items ``(image [3, S, S] float, label)``.

    ``crop``: a random ``crop`` x ``crop`` window of each patch (full-resolution morphology at a fraction of
    the tokens); the centre window when ``augment`` is None (validation)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: Augment | None = None, crop: int | None = None):
        self.images, self.labels, self.augment, self.crop = images, np.asarray(labels), augment, crop

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return training_view(self.images[i], self.crop, self.augment), int(self.labels[i])


class TripletStep:
    """Warm-up epochs: lineage cross-entropy; then batch-hard triplet (+ ``ce_weight`` x cross-entropy).

    The cross-entropy is a cosine (proxy) classifier on the same L2-normalised embedding the triplet loss
    uses: logits = ``scale`` * cos(z, w_lineage), the proxies w being the rows of the ViT's ``head``. Classes
    must then be separated by angle, so the softmax also holds the normalised embeddings apart (a linear head
    on the raw CLS does not: the triplet stage collapsed the normalised embeddings under it)."""

    def __init__(self, margin: float, warmup_epochs: int, ce_weight: float, scale: float):
        self.margin, self.warmup_epochs, self.ce_weight, self.scale = margin, warmup_epochs, ce_weight, scale
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, model, batch, device) -> dict[str, torch.Tensor]:
        x, labels = (t.to(device) for t in batch)
        z = F.normalize(model(x)["cls"].float(), dim=-1)
        triplet = batch_hard_triplet(z, labels, self.margin)
        if model.config.num_classes > 0:
            proxies = F.normalize(model.head.weight.float(), dim=-1)
            ce = F.cross_entropy(self.scale * z @ proxies.T, labels)
        else:
            ce = torch.zeros((), device=device)
        loss = ce if self.epoch < self.warmup_epochs else triplet + self.ce_weight * ce
        spread = torch.cdist(z, z).mean()
        return {"loss": loss, "triplet": triplet.detach(), "ce": ce.detach(), "spread": spread.detach()}


@torch.no_grad()
def embed(
    model: VisionTransformer, images: np.ndarray, batch_size: int, device="cpu", crop: int | None = None
) -> np.ndarray:
    """L2-normalised CLS embeddings of uint8 patches [N, 3, S, S] -> [N, D]. With ``crop``, the mean of the
    normalised embeddings of the non-overlapping ``crop`` x ``crop`` windows of each patch (then normalised)."""
    model.eval().to(device)
    out = []
    for parts in window_batches(images, crop, batch_size, device):
        if len(parts) > 1:
            z = torch.stack([F.normalize(model(w)["cls"].float(), dim=-1) for w in parts]).mean(0)
        else:
            z = model(parts[0])["cls"].float()
        out.append(F.normalize(z, dim=-1).cpu())
    return torch.cat(out).numpy()


def train_encoder(
    patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, cfg: WSIEncodingConfig
) -> tuple[VisionTransformer, pd.DataFrame]:
    """Train the ViT on the ``train`` patches of the evaluation split (held-out patches never seen), in a
    nested MLflow run ``wsi_encoding``. Returns the model (``meta``: lineages, MLflow run) and the history."""
    train_rows = (patch_index["split"] == "train").to_numpy()
    lineages = sorted(patch_index.loc[train_rows, "lineage_id"].unique())
    labels = patch_index.loc[train_rows, "lineage_id"].map({lab: i for i, lab in enumerate(lineages)}).to_numpy()
    # Every patch of the index is decoded (the cache key the embedding and evaluation nodes use, so with
    # `cache: disk` the slides are decoded once per run); the training rows are kept.
    images = np.asarray(
        decoded_patches(patch_index.reset_index(drop=True), slide_manifest, cfg.data, cfg.checkpoint_dir)[train_rows]
    )
    val = np.random.default_rng(cfg.seed).random(len(labels)) < cfg.val_fraction
    torch.manual_seed(cfg.seed)
    read_px, crop = cfg.data.geometry
    model = vit(
        cfg.model.preset,
        img_size=crop or read_px,
        num_classes=len(lineages),
        grad_checkpointing=cfg.model.grad_checkpointing,
    )
    step = TripletStep(cfg.loss.margin, cfg.loss.warmup_epochs, cfg.loss.ce_weight, cfg.loss.proxy_scale)
    augment = Augment(cfg.augment.flips, cfg.augment.hed_sigma, cfg.augment.hed_bias)
    train_set = PatchTensorDataset(images[~val], labels[~val], augment, crop=crop)
    val_set = PatchTensorDataset(images[val], labels[val], crop=crop) if val.any() else None
    config = TrainConfig.of(cfg.train, cfg.seed, cfg.device)
    params = {
        **{k: v for k, v in cfg.to_dict().items() if k != "checkpoint_dir"},
        "lineages": len(lineages),
        "train_patches": int((~val).sum()),
    }
    with nested_run("wsi_encoding", params) as run:
        result = fit(
            model,
            train_set,
            val_set,
            step,
            config,
            checkpoint_dir=Path(cfg.checkpoint_dir) / "wsi",
            on_epoch=lambda epoch, metrics: log_metrics(
                run, {k: v for k, v in metrics.items() if k != "epoch"}, step=epoch
            ),
            desc="wsi encoder",
            fingerprint=fingerprint(
                model.config_dict(),
                config.to_dict(),
                cfg.loss.to_dict(),
                cfg.augment.to_dict(),
                cfg.sampler.to_dict(),
                labels[~val],
                images.shape,
            ),
            batch_sampler=lambda epoch: PKSampler(
                labels[~val], cfg.sampler.p, cfg.sampler.k, seed=cfg.seed * 1000 + epoch
            ),
        )
        model.cpu().eval().describe(lineages=lineages, mlflow_run_id=run.info.run_id if run is not None else None)
        if result["epochs_run"]:  # a resumed, finished training is the model already registered
            description = (
                f"WSI patch encoder (ViT {cfg.model.preset}, 16x16 sub-patches; lineage softmax warm-up then batch-hard triplet), "
                f"{len(lineages)} lineages, {int((~val).sum())} training patches of the evaluation split"
            )
            tags = {"split": made_with(patch_index).get("split", {}).get("mode"), "commit": git_commit()}
            log_torch_model(run, model, "gb_kedro.wsi_encoder", description, tags)
    logger.info(
        "wsi_encoding: %d epochs, best epoch %d, device %s",
        len(result["history"]),
        result["best_epoch"],
        result["device"],
    )
    return model, pd.DataFrame(result["history"])


def embed_patches(
    model: VisionTransformer, patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, cfg: WSIEncodingConfig
) -> pd.DataFrame:
    """CLS embeddings (L2-normalised) of every tumour patch, train and held out, with the index columns."""
    images = decoded_patches(patch_index, slide_manifest, cfg.data, cfg.checkpoint_dir)
    z = embed(
        model, images, cfg.data.inference_batch_size, device=resolve_device(cfg.device), crop=cfg.data.geometry[1]
    )
    frame = patch_index[["slide_id", "x", "y", "lineage_id", "patient_id", "mouse_id", "split"]].reset_index(drop=True)
    return pd.concat([frame, pd.DataFrame(z, columns=[f"e{i}" for i in range(z.shape[1])])], axis=1)


def evaluate_embeddings(
    embeddings: pd.DataFrame,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    model: VisionTransformer,
    split: SplitConfig,
    cfg: WSIEncodingConfig,
):
    """Image-only lineage retrieval: 1-NN of held-out patches against training patches, beside the
    colour-histogram baseline (1-NN on standardised colour features) and chance; a confusion plot."""
    cols = [c for c in embeddings.columns if c.startswith("e")]
    train = (embeddings["split"] == "train").to_numpy()
    test = ~train
    patient_of = dict(zip(embeddings["lineage_id"], embeddings["patient_id"], strict=False))
    y = embeddings["lineage_id"].to_numpy()
    model_eval = nearest_neighbour_eval(
        embeddings.loc[train, cols].to_numpy(), y[train], embeddings.loc[test, cols].to_numpy(), y[test], patient_of
    )
    images = decoded_patches(patch_index.reset_index(drop=True), slide_manifest, cfg.data, cfg.checkpoint_dir)
    colour = colour_histogram_features(np.moveaxis(images, 1, -1), cfg.colour_bins)
    colour = StandardScaler().fit(colour[train]).transform(colour)
    colour_eval = nearest_neighbour_eval(colour[train], y[train], colour[test], y[test], patient_of)
    metrics = {"split_mode": split.mode}
    for name, ev in (("model", model_eval), ("colour_baseline", colour_eval)):
        metrics.update({f"{name}_{k}": v for k, v in ev.items() if k != "predicted"})
    figure = confusion_figure(
        y[test],
        model_eval["predicted"],
        f"WSI encoder, 1-NN lineage retrieval ({split.mode} split): {model_eval['accuracy']:.2f} "
        f"(colour {colour_eval['accuracy']:.2f}, chance {model_eval['chance']:.2f})",
    )
    log_evaluation("wsi_encoding", model.meta.get("mlflow_run_id"), metrics, figure, "wsi_confusion.png")
    logger.info(
        "wsi_encoding (%s split): 1-NN lineage accuracy %.3f, colour baseline %.3f, chance %.3f",
        split.mode,
        model_eval["accuracy"],
        colour_eval["accuracy"],
        model_eval["chance"],
    )
    return metrics, figure

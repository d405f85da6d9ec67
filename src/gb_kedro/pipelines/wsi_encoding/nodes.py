"""Nodes of the ``wsi_encoding`` pipeline; the logic lives in :mod:`gb_kedro.wsi_encoding`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gb_kedro import wsi_encoding as wsi
from gb_kedro.baselines import colour_histogram_features
from gb_kedro.models.vit import VisionTransformer, vit
from gb_kedro.slides.augment import Augment
from gb_kedro.slides.sampling import PKSampler
from gb_kedro.tracking import log_evaluation, log_metrics, log_torch_model, nested_run
from gb_kedro.training import TrainConfig, fingerprint, fit, resolve_device

logger = logging.getLogger(__name__)


def train_wsi_encoder(patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, options: dict) -> tuple[dict, pd.DataFrame]:
    """Train the ViT on the ``train`` patches of the evaluation split (held-out patches never seen), in a
    nested MLflow run ``wsi_encoding``. Returns the model bundle and the per-epoch history."""
    seed = int(options.get("seed", 0))
    train = patch_index[patch_index["split"] == "train"].reset_index(drop=True)
    lineages = sorted(train["lineage_id"].unique())
    labels = train["lineage_id"].map({lab: i for i, lab in enumerate(lineages)}).to_numpy()
    # Decode every patch of the index (the same cache key as the embedding and evaluation nodes, so with
    # `cache: disk` the slides are decoded once per run), then keep the training rows.
    images = np.asarray(wsi.decoded_patches(patch_index.reset_index(drop=True), slide_manifest, options)[(patch_index["split"] == "train").to_numpy()])
    rng = np.random.default_rng(seed)
    val = rng.random(len(train)) < float(options.get("val_fraction", 0.1))
    model_opts = dict(options.get("model", {}))
    preset = model_opts.pop("preset", "tiny")
    torch.manual_seed(seed)
    read_px, crop = wsi.patch_geometry(options)
    model = vit(preset, img_size=crop or read_px, num_classes=len(lineages), **model_opts)
    loss = options.get("loss", {})
    step = wsi.TripletStep(float(loss.get("margin", 0.3)), int(loss.get("warmup_epochs", 3)), float(loss.get("ce_weight", 0.0)))
    aug = options.get("augment", {})
    train_set = wsi.PatchTensorDataset(images[~val], labels[~val], Augment(aug.get("flips", True), aug.get("hed_sigma", 0.05), aug.get("hed_bias", 0.02)), crop=crop)
    val_set = wsi.PatchTensorDataset(images[val], labels[val], crop=crop) if val.any() else None
    sampler_opts = options.get("sampler", {})
    config = TrainConfig.from_dict({**options.get("train", {}), "seed": seed, "device": options.get("device", "auto")})
    ckpt = Path(options.get("checkpoint_dir", "data/06_models/checkpoints")) / "wsi"
    with nested_run("wsi_encoding", {**{k: v for k, v in options.items() if k != "checkpoint_dir"}, "lineages": len(lineages), "train_patches": int((~val).sum())}) as run:
        result = fit(
            model, train_set, val_set, step, config, checkpoint_dir=ckpt,
            on_epoch=lambda epoch, metrics: log_metrics(run, {k: v for k, v in metrics.items() if k != "epoch"}, step=epoch),
            desc="wsi encoder",
            fingerprint=fingerprint(model.config_dict(), config.__dict__, loss, aug, sampler_opts, labels[~val], images.shape),
            batch_sampler=lambda epoch: PKSampler(labels[~val], int(sampler_opts.get("p", 8)), int(sampler_opts.get("k", 4)), seed=seed * 1000 + epoch),
        )
        model.cpu().eval()
        bundle = {"config": model.config_dict(), "state_dict": model.state_dict(), "lineages": lineages, "mlflow_run_id": run.info.run_id if run is not None else None}
        log_torch_model(run, model, registered_name="gb_kedro.wsi_encoder")
    logger.info("wsi_encoding: %d epochs, best epoch %d, device %s", len(result["history"]), result["best_epoch"], result["device"])
    return bundle, pd.DataFrame(result["history"])


def load_wsi_encoder(bundle: dict) -> VisionTransformer:
    model = VisionTransformer.from_config(bundle["config"])
    model.load_state_dict(bundle["state_dict"])
    return model.eval()


def embed_wsi_patches(bundle: dict, patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, options: dict) -> pd.DataFrame:
    """CLS embeddings (L2-normalised) of every tumour patch, train and held out, with the index columns."""
    images = wsi.decoded_patches(patch_index, slide_manifest, options)
    z = wsi.embed(load_wsi_encoder(bundle), images, device=resolve_device(options.get("device", "auto")), crop=wsi.patch_geometry(options)[1])
    frame = patch_index[["slide_id", "x", "y", "lineage_id", "patient_id", "mouse_id", "split"]].reset_index(drop=True)
    return pd.concat([frame, pd.DataFrame(z, columns=[f"e{i}" for i in range(z.shape[1])])], axis=1)


def evaluate_wsi_embeddings(embeddings: pd.DataFrame, patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, bundle: dict, split: dict, options: dict):
    """Image-only lineage retrieval: 1-NN of held-out patches against training patches, beside the
    colour-histogram baseline (1-NN on colour features) and chance; a confusion plot."""
    cols = [c for c in embeddings.columns if c.startswith("e")]
    train = (embeddings["split"] == "train").to_numpy()
    test = ~train
    patient_of = dict(zip(embeddings["lineage_id"], embeddings["patient_id"], strict=False))
    y = embeddings["lineage_id"].to_numpy()
    model_eval = wsi.nearest_neighbour_eval(embeddings.loc[train, cols].to_numpy(), y[train], embeddings.loc[test, cols].to_numpy(), y[test], patient_of)
    colour = colour_histogram_features(np.moveaxis(wsi.decoded_patches(patch_index.reset_index(drop=True), slide_manifest, options), 1, -1))
    colour = (colour - colour[train].mean(0)) / (colour[train].std(0) + 1e-6)
    colour_eval = wsi.nearest_neighbour_eval(colour[train], y[train], colour[test], y[test], patient_of)
    metrics = {"split_mode": split.get("mode", "patch")}
    for name, ev in (("model", model_eval), ("colour_baseline", colour_eval)):
        metrics.update({f"{name}_{k}": v for k, v in ev.items() if k != "predicted"})
    figure = wsi.confusion_figure(y[test], model_eval["predicted"],
                                  f"WSI encoder, 1-NN lineage retrieval ({metrics['split_mode']} split): {model_eval['accuracy']:.2f} "
                                  f"(colour {colour_eval['accuracy']:.2f}, chance {model_eval['chance']:.2f})")
    log_evaluation("wsi_encoding", bundle.get("mlflow_run_id"), metrics, figure, "wsi_confusion.png")
    logger.info("wsi_encoding (%s split): 1-NN lineage accuracy %.3f, colour baseline %.3f, chance %.3f",
                metrics["split_mode"], model_eval["accuracy"], colour_eval["accuracy"], model_eval["chance"])
    return metrics, figure

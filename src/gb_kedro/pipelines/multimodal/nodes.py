"""Nodes of the ``multimodal`` pipeline; the logic lives in :mod:`gb_kedro.multimodal`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gb_kedro import multimodal as mm
from gb_kedro import wsi_encoding as wsi
from gb_kedro.baselines import colour_histogram_features
from gb_kedro.errors import InputDataError
from gb_kedro.models.multimodal import MultimodalModel
from gb_kedro.pipelines.rna_encoding.nodes import load_rna_encoder
from gb_kedro.pipelines.wsi_encoding.nodes import load_wsi_encoder
from gb_kedro.slides.augment import Augment
from gb_kedro.slides.sampling import PKSampler
from gb_kedro.tracking import log_evaluation, log_metrics, log_torch_model, nested_run
from gb_kedro.training import TrainConfig, fingerprint, fit, resolve_device

logger = logging.getLogger(__name__)


def _rna_table(cohort_features: pd.DataFrame, cohort_samples: pd.DataFrame, genes: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The cohort's RNA samples (sample_id, lineage_id, patient_id) and their vectors in the model's gene order."""
    samples = cohort_samples[cohort_samples["sample_id"].isin(cohort_features.index)].reset_index(drop=True)
    missing = [g for g in genes if g not in cohort_features.columns]
    if missing:
        raise InputDataError("cohort_features", f"{len(missing)} gene(s) of the RNA encoder are missing, e.g. {missing[:3]}: rerun data_engineering")
    return samples, cohort_features.loc[samples["sample_id"], genes].to_numpy(np.float32)


def _paired_patches(patch_index: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Patch rows whose lineage has an RNA sample (others cannot be paired; dropped with a warning)."""
    index = patch_index.reset_index(drop=True)
    has_rna = index["lineage_id"].isin(samples["lineage_id"])
    if not has_rna.any():
        raise InputDataError("patch_index", "no tumour patch belongs to a lineage of the cohort sample sheet: check lineage_id in both")
    if not has_rna.all():
        logger.warning("multimodal: %d patch(es) of lineage(s) without an RNA sample are not used: %s", (~has_rna).sum(), sorted(index.loc[~has_rna, "lineage_id"].unique())[:10])
    return index


def _patient_of(samples: pd.DataFrame, patch_index: pd.DataFrame) -> dict:
    return {**dict(zip(patch_index["lineage_id"], patch_index["patient_id"], strict=True)), **dict(zip(samples["lineage_id"], samples["patient_id"], strict=True))}


def build_model(wsi_bundle: dict, rna_bundle: dict, options: dict, row: dict) -> MultimodalModel:
    """The multimodal model of a Table 1 row: pretrained encoders (or all weights random), frozen or not."""
    torch.manual_seed(int(options.get("seed", 0)))
    model = MultimodalModel.from_encoders(load_rna_encoder(rna_bundle), load_wsi_encoder(wsi_bundle), **dict(options.get("model", {})))
    if not row.get("pretrained", True):  # same architecture, fresh random weights everywhere
        model = MultimodalModel.from_config(model.config_dict())
    if row.get("freeze_encoders", False):
        for p in [*model.rna_encoder.parameters(), *model.wsi_encoder.parameters()]:
            p.requires_grad_(False)
    return model


def training_pairs(patch_index: pd.DataFrame, cohort_features: pd.DataFrame, cohort_samples: pd.DataFrame, genes: list[str]):
    """The training patches (split == train) whose lineage has an RNA sample: (rows mask over the index,
    lineages, integer labels, RNA vectors of each label)."""
    samples, rna = _rna_table(cohort_features, cohort_samples, genes)
    index = _paired_patches(patch_index, samples)
    train_rows = ((index["split"] == "train") & index["lineage_id"].isin(samples["lineage_id"])).to_numpy()
    train = index[train_rows]
    lineages = sorted(train["lineage_id"].unique())
    labels = train["lineage_id"].map({lab: i for i, lab in enumerate(lineages)}).to_numpy()
    rna_of_label = [rna[(samples["lineage_id"] == lab).to_numpy()] for lab in lineages]
    return train_rows, lineages, labels, rna_of_label


def fit_pairs(model: MultimodalModel, images: np.ndarray, labels: np.ndarray, rna_of_label: list[np.ndarray], options: dict, wsi_options: dict,
              recon_weight: float, name: str, run=None) -> dict:
    """Train ``model`` on (patch, RNA of its label) pairs with :class:`MultimodalStep` (checkpointed per
    ``name``; per-epoch metrics to ``run``). Returns :func:`gb_kedro.training.fit`'s result."""
    seed = int(options.get("seed", 0))
    _, crop = wsi.patch_geometry(wsi_options)
    val = np.random.default_rng(seed).random(len(labels)) < float(options.get("val_fraction", 0.1))
    aug = wsi_options.get("augment", {})
    loss = {**options.get("loss", {}), "recon_weight": float(recon_weight)}
    train_set = mm.PairDataset(images[~val], labels[~val], rna_of_label, Augment(aug.get("flips", True), aug.get("hed_sigma", 0.05), aug.get("hed_bias", 0.02)), crop=crop)
    val_set = mm.PairDataset(images[val], labels[val], rna_of_label, crop=crop) if val.sum() > 1 and len(set(labels[val])) > 1 else None
    step = mm.MultimodalStep(float(loss.get("temperature", 0.07)), float(loss.get("itc_weight", 1.0)), float(loss.get("itm_weight", 1.0)),
                             float(loss.get("recon_weight", 0.0)), bool(loss.get("mask_rna", True)), float(loss.get("gene_dropout", 0.0)))
    sampler = options.get("sampler", {})
    config = TrainConfig.from_dict({**options.get("train", {}), "seed": seed, "device": options.get("device", "auto")})
    return fit(
        model, train_set, val_set, step, config,
        checkpoint_dir=Path(options.get("checkpoint_dir", "data/06_models/checkpoints")) / f"multimodal_{name}",
        on_epoch=lambda epoch, metrics: log_metrics(run, {k: v for k, v in metrics.items() if k != "epoch"}, step=epoch),
        desc=f"multimodal {name}",
        fingerprint=fingerprint(model.config_dict(), config.__dict__, loss, name, aug, sampler, labels[~val], images.shape, [r.tolist() for r in rna_of_label]),
        batch_sampler=lambda epoch: PKSampler(labels[~val], int(sampler.get("p", 8)), int(sampler.get("k", 4)), seed=seed * 1000 + epoch),
    )


def train_multimodal(
    wsi_bundle: dict,
    rna_bundle: dict,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    options: dict,
    wsi_options: dict,
    row: dict,
) -> tuple[dict, pd.DataFrame]:
    """Build the multimodal model from the pretrained encoders (or random ones) and train it on the
    training patches of the evaluation split paired with their lineage's RNA sample, in a nested MLflow
    run ``multimodal.<row>``. ``row``: ``name``, ``pretrained``, ``train``, ``freeze_encoders``, ``recon_weight``."""
    name = row["name"]
    model = build_model(wsi_bundle, rna_bundle, options, row)
    train_rows, lineages, labels, rna_of_label = training_pairs(patch_index, cohort_features, cohort_samples, rna_bundle["genes"])
    loss = {**options.get("loss", {}), "recon_weight": float(row.get("recon_weight", 0.0))}
    params = {"row": name, "label": row.get("label", name), "rna_grouping": rna_bundle.get("variant"), "pretrained": row.get("pretrained", True),
              "trained": row.get("train", True), "freeze_encoders": row.get("freeze_encoders", False), "lineages": len(lineages),
              "train_patches": len(labels), **{k: v for k, v in options.items() if k not in ("checkpoint_dir", "loss")}, "loss": loss}
    history: list[dict] = []
    with nested_run(f"multimodal.{name}", params) as run:
        if row.get("train", True):
            images = np.asarray(wsi.decoded_patches(patch_index.reset_index(drop=True), slide_manifest, wsi_options)[train_rows])
            result = fit_pairs(model, images, labels, rna_of_label, options, wsi_options, float(row.get("recon_weight", 0.0)), name, run)
            history = result["history"]
            logger.info("multimodal.%s: %d epochs, best epoch %d, device %s", name, len(history), result["best_epoch"], result["device"])
        else:
            logger.info("multimodal.%s: not trained (random initialisation row)", name)
        for p in model.parameters():
            p.requires_grad_(True)
        model.cpu().eval()
        bundle = {"config": model.config_dict(), "state_dict": model.state_dict(), "row": name, "label": row.get("label", name),
                  "rna_grouping": rna_bundle.get("variant"), "genes": rna_bundle["genes"], "lineages": lineages,
                  "mlflow_run_id": run.info.run_id if run is not None else None}
        log_torch_model(run, model, registered_name=f"gb_kedro.multimodal.{name}")
    return bundle, pd.DataFrame(history) if history else pd.DataFrame(columns=["epoch", "train/loss"])  # untrained: a header only


def load_multimodal(bundle: dict) -> MultimodalModel:
    model = MultimodalModel.from_config(bundle["config"])
    model.load_state_dict(bundle["state_dict"])
    return model.eval()


def _held_out(index: pd.DataFrame) -> pd.DataFrame:
    test = index[index["split"] == "test"]
    if test.empty:
        raise InputDataError("patch_index", "no held-out (split == test) patch to evaluate: check the split parameters")
    return test


def held_out_pairs(patch_index: pd.DataFrame, cohort_features: pd.DataFrame, cohort_samples: pd.DataFrame, genes: list[str]):
    """The cohort's RNA samples and their vectors (``genes`` order), the patch index, the mask of held-out
    patches whose lineage has an RNA sample and those rows (InputDataError when there is none)."""
    samples, rna = _rna_table(cohort_features, cohort_samples, genes)
    index = _paired_patches(patch_index, samples)
    test_rows = ((index["split"] == "test") & index["lineage_id"].isin(samples["lineage_id"])).to_numpy()
    return samples, rna, index, test_rows, _held_out(index[test_rows])


def evaluate_multimodal(
    bundle: dict,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    split: dict,
    options: dict,
    wsi_options: dict,
):
    """Eq. 9 on every held-out patch against every cohort RNA sample: Table 1 metrics of this row, a
    confusion plot and the per-patch predictions (top-k sample IDs and similarities)."""
    model = load_multimodal(bundle)
    samples, rna, index, test_rows, test = held_out_pairs(patch_index, cohort_features, cohort_samples, bundle["genes"])
    device = resolve_device(options.get("device", "auto"))
    images = wsi.decoded_patches(patch_index.reset_index(drop=True), slide_manifest, wsi_options)
    image_z = mm.embed_images(model, np.asarray(images[test_rows]), crop=wsi.patch_geometry(wsi_options)[1], device=device)
    rna_z = mm.embed_rna(model, rna, device=device)
    evaluation = options.get("evaluation", {})
    top = min(int(evaluation.get("top_k", 5)), len(samples))
    sim, ranked = mm.retrieval(image_z, rna_z, top=top)
    patient_of = _patient_of(samples, index)
    metrics = mm.retrieval_metrics(ranked, test["lineage_id"].to_numpy(), test["slide_id"].to_numpy(), samples["lineage_id"].to_numpy(),
                                   patient_of, int(evaluation.get("n_boot", 1000)), int(options.get("seed", 0)))
    metrics.update({"configuration": bundle.get("label", bundle["row"]), "row": bundle["row"], "split": split.get("mode", "patch"), "rna_grouping": bundle.get("rna_grouping")})
    predictions = test[["slide_id", "x", "y", "lineage_id", "patient_id", "mouse_id"]].reset_index(drop=True)
    for k in range(top):
        predictions[f"sample_{k + 1}"] = samples["sample_id"].to_numpy()[ranked[:, k]]
        predictions[f"similarity_{k + 1}"] = np.take_along_axis(sim, ranked[:, k : k + 1], axis=1)[:, 0]
    predictions["predicted_lineage"] = samples["lineage_id"].to_numpy()[ranked[:, 0]]
    figure = wsi.confusion_figure(predictions["lineage_id"], predictions["predicted_lineage"],
                                 f"{metrics['configuration']} ({metrics['split']} split): lineage {metrics['lineage_accuracy']:.2f}, "
                                 f"patient {metrics['patient_accuracy']:.2f} (chance {metrics['lineage_chance']:.2f} / {metrics['patient_chance']:.2f})",
                                 xlabel="lineage of the retrieved RNA sample")
    log_evaluation(f"multimodal.{bundle['row']}", bundle.get("mlflow_run_id"), metrics, figure, f"retrieval_confusion_{bundle['row']}.png")
    logger.info("multimodal.%s (%s split): lineage %.3f [%.3f, %.3f], patient %.3f, chance %.3f", bundle["row"], metrics["split"],
                metrics["lineage_accuracy"], metrics["lineage_accuracy_ci_low"], metrics["lineage_accuracy_ci_high"], metrics["patient_accuracy"], metrics["lineage_chance"])
    return metrics, figure, predictions


def colour_baseline(
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    split: dict,
    options: dict,
    wsi_options: dict,
    row: dict,
) -> dict:
    """The non-deep Table 1 row: colour histogram + stain statistics -> RNA vector by ridge regression fit
    on the training pairs, then the same retrieval as eq. 9 (cosine to every cohort RNA sample)."""
    samples, rna, index, test_rows, test = held_out_pairs(patch_index, cohort_features, cohort_samples, list(cohort_features.columns))
    train_rows = ((index["split"] == "train") & index["lineage_id"].isin(samples["lineage_id"])).to_numpy()
    images = wsi.decoded_patches(patch_index.reset_index(drop=True), slide_manifest, wsi_options)
    colour = colour_histogram_features(np.moveaxis(np.asarray(images), 1, -1))
    row_of_lineage = {lab: i for i, lab in enumerate(samples["lineage_id"])}  # one sample per lineage: the first
    train_rna = rna[[row_of_lineage[lab] for lab in index.loc[train_rows, "lineage_id"]]]
    evaluation = options.get("evaluation", {})
    top = min(int(evaluation.get("top_k", 5)), len(samples))
    seed = int(options.get("seed", 0))
    with nested_run(f"multimodal.{row['name']}", {"row": row["name"], "label": row.get("label"), "features": "RGB histograms (16 bins) + channel mean/std", "map": "StandardScaler + RidgeCV"}) as run:
        ranked, fitted = mm.colour_baseline_retrieval(colour[train_rows], train_rna, colour[test_rows], rna, top=top, seed=seed)
        metrics = mm.retrieval_metrics(ranked, test["lineage_id"].to_numpy(), test["slide_id"].to_numpy(), samples["lineage_id"].to_numpy(),
                                       _patient_of(samples, index), int(evaluation.get("n_boot", 1000)), seed)
        metrics.update({"configuration": row.get("label", row["name"]), "row": row["name"], "split": split.get("mode", "patch"), "rna_grouping": None,
                        "ridge_alpha": float(fitted[-1].alpha_)})
        log_metrics(run, {f"eval/{k}": v for k, v in metrics.items()})
        if run is not None:
            import mlflow.sklearn

            mlflow.sklearn.log_model(fitted, name="model")
    logger.info("multimodal.%s (%s split): lineage %.3f, patient %.3f", row["name"], metrics["split"], metrics["lineage_accuracy"], metrics["patient_accuracy"])
    return metrics


def assemble_table1(*rows: dict) -> tuple[pd.DataFrame, str]:
    """Table 1 (rows = configurations; patient and lineage accuracy with 95 % intervals) as a table and markdown."""
    table = mm.table1(list(rows))
    return table, mm.table1_markdown(table)

"""Training and evaluating the multimodal model (paper 2.4-2.5, eq. 7-9, Table 1).

Pairs: every training WSI patch with the RNA sample of its lineage; batches hold P lineages x K patches,
so every anchor has positives (same lineage) and negatives. The loss is

    L = w_itc * L_itc (eq. 7-8) + w_itm * L_itm (matching, hard negatives) + w_rec * L_rec (RNA decoder)

Retrieval (eq. 9): a held-out patch's projected image CLS against the projected RNA CLS of every cohort RNA
sample (cosine); the predicted sample is the argmax; its lineage and patient are scored.

Beside Table 1's rows, the model row is trained again here: with other seeds (Table 2's seed stability) and on
patches paired with another lineage's RNA sample (the permutation null of Table 2); the reporting stage reads
those models and their predictions.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.utils.data import Dataset

from gb_kedro.baselines import (
    classifier_similarity,
    colour_columns,
    expression_bridge,
    fit_lineage_classifier,
)
from gb_kedro.config import (
    BridgeRow,
    ClassifierRow,
    ColourRow,
    FeatureAdapterRow,
    LineageClassifierConfig,
    MorphometryRow,
    MultimodalConfig,
    PatchesConfig,
    SplitConfig,
    Table1Row,
)
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.errors import InputDataError, listed
from gb_kedro.evaluation import (
    SET_LABELS,
    confusion_figure,
    feature_baseline_retrieval,
    flat_set_metrics,
    retrieval,
    score_held_out_sets,
)
from gb_kedro.losses import cross_modal_info_nce, sample_hard_negatives
from gb_kedro.models.multimodal import MultimodalModel, MultimodalModelConfig
from gb_kedro.models.rna_mae import RNAMaskedAutoencoder
from gb_kedro.models.vit import VisionTransformer
from gb_kedro.provenance import fingerprint, made_with
from gb_kedro.slides.augment import Augment, StainMix
from gb_kedro.slides.morphometry import ALL_FEATURES as ALL_MORPHOMETRY_FEATURES
from gb_kedro.slides.morphometry import FEATURES as MORPHOMETRY_FEATURES
from gb_kedro.slides.morphometry import numbered_columns
from gb_kedro.slides.patches import apply_views, draw_view, window_batches
from gb_kedro.slides.sampling import PKSampler
from gb_kedro.tracking import (
    git_commit,
    log_evaluation,
    log_metrics,
    log_sklearn_model,
    log_torch_model,
    nested_run,
    registered_versions,
)
from gb_kedro.training import TrainConfig, fit, kept_epoch, resolve_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairedCohort:
    """What the multimodal model is trained and evaluated on: the tumour patches (``patch_index`` and their
    decoded ``pixels``, rows aligned; None for rows that read per-patch features instead) and the cohort's RNA
    (``features``: samples x genes; ``samples``: the sample sheet), paired by lineage."""

    patch_index: pd.DataFrame
    pixels: PatchPixels | None
    features: pd.DataFrame
    samples: pd.DataFrame
    patch_features: np.ndarray | None = None  # another patch encoder's features [N, D] (NaN rows: none) for pixels


def _with_features(data: PairedCohort, rows: np.ndarray) -> np.ndarray:
    """``rows`` (a mask over the patch index) less the patches without a feature row, when the cohort reads
    precomputed features instead of pixels."""
    if data.patch_features is None:
        return rows
    return rows & np.isfinite(data.patch_features).all(axis=1)


def _draw_rna(options: torch.Tensor) -> torch.Tensor:
    """One RNA vector of a lineage's samples [k, G]: the only one, or one drawn at random (torch's stream)."""
    return options[int(torch.randint(len(options), (1,)))] if len(options) > 1 else options[0]


class PairDataset(Dataset):
    """Decoded patches paired with their lineage's RNA vector: items ``(image [3, S, S], rna [G], label)``.

    ``rna_of_label[label]`` holds the RNA vectors of that lineage ([k, n_genes]; one sample per lineage in
    the paper, a random one of them per item otherwise). ``crop``: random ``crop``-px windows in training,
    the centre window without ``augment``."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        rna_of_label: list[np.ndarray],
        augment: Augment | None = None,
        crop: int | None = None,
        stain: StainMix | None = None,
        slides: np.ndarray | None = None,
    ):
        self.images, self.labels, self.augment, self.crop = images, np.asarray(labels), augment, crop
        self.rna_of_label = [torch.as_tensor(np.atleast_2d(r), dtype=torch.float32) for r in rna_of_label]
        self.stain, self.slides = stain, slides

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        """The item's window (uint8), random draws and RNA; :meth:`collate` does the pixel work batch-wise."""
        slide = int(self.slides[i]) if self.slides is not None else 0
        window, draws = draw_view(self.images[i], self.crop, self.augment, self.stain, slide)
        label = int(self.labels[i])
        return window, draws, _draw_rna(self.rna_of_label[label]), label

    def collate(self, items: list) -> tuple[torch.Tensor, ...]:
        """A batch ``(image [N, 3, S, S] float, rna [N, G], label)``, the views made for the whole batch at once."""
        windows, draws, rna, labels = zip(*items, strict=True)
        return apply_views(torch.stack(windows), torch.stack(draws), self.stain), torch.stack(rna), torch.tensor(labels)


class FeaturePairDataset(Dataset):
    """Precomputed patch features paired with their lineage's RNA vector: items ``(features [D], rna [G], label)``
    (one sample per lineage, else a random one of the lineage's per item, as :class:`PairDataset`)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, rna_of_label: list[np.ndarray]):
        self.features, self.labels = torch.as_tensor(features, dtype=torch.float32), np.asarray(labels)
        self.rna_of_label = [torch.as_tensor(np.atleast_2d(r), dtype=torch.float32) for r in rna_of_label]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        label = int(self.labels[i])
        return self.features[i], _draw_rna(self.rna_of_label[label]), label


class MultimodalStep:
    """One training step: ITC (eq. 7-8) + ITM with hard negatives + RNA reconstruction from the fusion.

    For the matching head (ALBEF): the N positive pairs, then for each image a negative RNA and for each
    RNA a negative image, drawn from the contrastive similarities (harder = more likely, positives never).
    With ``mask_rna`` one gene group of each RNA input is masked (as in RNA pretraining) and with
    ``gene_dropout`` a share of the gene values is set to 0 (the authors' release masks 30 % of the values):
    the RNA side's augmentations when a lineage has one sample. The decoder reconstructs the intact vector;
    ``recon_masked`` is its error on the masked group.
    """

    def __init__(
        self,
        temperature: float,
        itc_weight: float,
        itm_weight: float,
        recon_weight: float,
        mask_rna: bool,
        gene_dropout: float,
    ):
        self.temperature, self.itc_weight, self.itm_weight, self.recon_weight, self.mask_rna = (
            temperature,
            itc_weight,
            itm_weight,
            recon_weight,
            mask_rna,
        )
        self.gene_dropout = gene_dropout

    def __call__(self, model: MultimodalModel, batch, device, gather: bool = False) -> dict[str, torch.Tensor]:
        images, rna, labels = (t.to(device) for t in batch)
        n = images.shape[0]
        g = len(model.rna_encoder.group_sizes)
        mask_idx = torch.randint(g, (n,), device=device) if self.mask_rna and g > 1 else None
        rna_in = rna
        if (
            self.gene_dropout and model.training
        ):  # the authors' RNA augmentation: a share of gene values set to 0 (the TCGA mean)
            rna_in = rna * (torch.rand_like(rna) >= self.gene_dropout)
        out = model(images, rna_in, mask_idx)
        itc = cross_modal_info_nce(out["z_img"], out["z_rna"], labels, labels, self.temperature, gather)
        positives = labels[:, None] == labels[None, :]
        sim = out["z_img"].float() @ out["z_rna"].float().T / self.temperature
        # Rows with a negative in the batch (all of them in P x K training batches; a validation batch's tail can
        # hold one lineage only, whose rows then get no negative pair).
        keep = ~positives.all(dim=1)
        logits = out["itm_logits"]
        if keep.any():
            neg_rna = sample_hard_negatives(sim[keep], positives[keep])
            neg_img = sample_hard_negatives(sim.T[keep], positives.T[keep])
            fused_neg = torch.cat(
                [
                    model.forward_fusion(
                        out["rna_tokens"][neg_rna], out["image_tokens"][keep]
                    ),  # image i + a negative RNA
                    model.forward_fusion(
                        out["rna_tokens"][keep], out["image_tokens"][neg_img]
                    ),  # RNA i + a negative image
                ]
            )
            logits = torch.cat([logits, model.forward_head(fused_neg)])
        logits = logits.float()
        n_neg = 2 * int(keep.sum())
        targets = torch.cat(
            [torch.ones(n, dtype=torch.long, device=device), torch.zeros(n_neg, dtype=torch.long, device=device)]
        )
        itm = F.cross_entropy(logits, targets)
        recon_losses = model.rna_encoder.forward_loss(rna, out["recon"], mask_idx)  # the RNA encoder's eq. 2 errors
        recon = recon_losses["recon_full"]
        metrics = {
            "itc": itc.detach(),
            "itm": itm.detach(),
            "recon": recon.detach(),
            "itm_accuracy": (logits.argmax(1) == targets).float().mean().detach(),
        }
        if mask_idx is not None:
            metrics["recon_masked"] = recon_losses["recon_masked"].detach()
        loss = self.itc_weight * itc + self.itm_weight * itm + (self.recon_weight * recon if self.recon_weight else 0.0)
        return {"loss": loss, **metrics}


@torch.no_grad()
def embed_images(model: MultimodalModel, images: np.ndarray, patches: PatchesConfig, device="cpu") -> np.ndarray:
    """Projected image embeddings of uint8 patches [N, 3, S, S] -> [N, E], L2-normalised (the mean over a
    patch's views -- its model-sized windows, each in its 4 quarter turns with ``test_views: rotations`` or its
    8 flips / rotations with ``dihedral`` -- then normalised), ``patches.inference_batch_size`` patches at a time."""
    model.eval().to(device)
    out = []
    batches = window_batches(images, patches.geometry[1], patches.inference_batch_size, patches.test_views, device)
    for parts in batches:
        z = torch.stack([model.encode_image(w)[0].float() for w in parts]).mean(0)
        out.append(F.normalize(z, dim=-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.embed_dim), np.float32)


@torch.no_grad()
def _embed_rows(model: MultimodalModel, encode, values: np.ndarray, batch_size: int, device) -> np.ndarray:
    """``encode`` (one of the model's unimodal encoders) of float rows [N, D], ``batch_size`` at a time -> its
    projected, L2-normalised embeddings [N, E]."""
    model.eval().to(device)
    out = [
        encode(torch.tensor(values[i : i + batch_size], dtype=torch.float32, device=device))[0].float().cpu()
        for i in range(0, len(values), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.embed_dim), np.float32)


def embed_features(model: MultimodalModel, features: np.ndarray, batch_size: int, device="cpu") -> np.ndarray:
    """Projected image embeddings of precomputed patch features [N, D] (``image: features``) -> [N, E]."""
    return _embed_rows(model, model.encode_image, features, batch_size, device)


@torch.no_grad()
def image_window_tokens(
    model: MultimodalModel, images: np.ndarray, crop: int | None, batch_size: int
) -> list[torch.Tensor]:
    """WSI encoder tokens of uint8 patches [N, 3, S, S], one tensor [N, 1 + L, Dw] per ``crop`` window."""
    model.eval()
    per_window: list[list[torch.Tensor]] = []
    for parts in window_batches(images, crop, batch_size, "none"):  # the windows themselves: their tokens are mapped
        for w, part in enumerate(parts):
            if len(per_window) <= w:
                per_window.append([])
            per_window[w].append(model.wsi_encoder.forward_features(part))
    return [torch.cat(p) for p in per_window]


def embed_rna(model: MultimodalModel, rna: np.ndarray, batch_size: int, device="cpu") -> np.ndarray:
    """Projected RNA embeddings (no masking) [N, n_genes] -> [N, E], L2-normalised."""
    return _embed_rows(model, model.encode_rna, rna, batch_size, device)


# --- pairs of the evaluation split -----------------------------------------------------------------
def rna_table(
    cohort_features: pd.DataFrame, cohort_samples: pd.DataFrame, genes: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The cohort's RNA samples (sample_id, lineage_id, patient_id, ...) and their vectors in ``genes`` order."""
    samples = cohort_samples[cohort_samples["sample_id"].isin(cohort_features.index)].reset_index(drop=True)
    missing = [g for g in genes if g not in cohort_features.columns]
    if missing:
        raise InputDataError(
            "cohort_features",
            f"{len(missing)} gene(s) of the RNA encoder are missing, e.g. {missing[:3]}: rerun data_engineering",
        )
    return samples, cohort_features.loc[samples["sample_id"], genes].to_numpy(np.float32)


def _paired_index(patch_index: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Patch rows whose lineage has an RNA sample (others cannot be paired; dropped with a warning)."""
    index = patch_index.reset_index(drop=True)
    has_rna = index["lineage_id"].isin(samples["lineage_id"])
    if not has_rna.any():
        raise InputDataError(
            "patch_index", "no tumour patch belongs to a lineage of the cohort sample sheet: check lineage_id in both"
        )
    if not has_rna.all():
        logger.warning(
            "multimodal: %d patch(es) of lineage(s) without an RNA sample are not used: %s",
            (~has_rna).sum(),
            listed(sorted(index.loc[~has_rna, "lineage_id"].unique()), 10),
        )
    return index


def patient_of(samples: pd.DataFrame, patch_index: pd.DataFrame) -> dict:
    """Lineage -> patient, from the patch index and the RNA samples."""
    return {
        **dict(zip(patch_index["lineage_id"], patch_index["patient_id"], strict=True)),
        **dict(zip(samples["lineage_id"], samples["patient_id"], strict=True)),
    }


def training_pairs(data: PairedCohort, genes: list[str]):
    """The training patches (split == train) whose lineage has an RNA sample: (rows mask over the index,
    lineages, integer labels, RNA vectors of each label)."""
    samples, rna = rna_table(data.features, data.samples, genes)
    index = _paired_index(data.patch_index, samples)
    train_rows = ((index["split"] == "train") & index["lineage_id"].isin(samples["lineage_id"])).to_numpy()
    train_rows = _with_features(data, train_rows)
    train = index[train_rows]
    lineages = sorted(train["lineage_id"].unique())
    labels = train["lineage_id"].map({lab: i for i, lab in enumerate(lineages)}).to_numpy()
    rna_of_label = [rna[(samples["lineage_id"] == lab).to_numpy()] for lab in lineages]
    return train_rows, lineages, labels, rna_of_label


def held_out_pairs(data: PairedCohort, genes: list[str]):
    """The cohort's RNA samples and their vectors (``genes`` order), the patch index, the mask of held-out
    patches whose lineage has an RNA sample and those rows (InputDataError when there is none)."""
    samples, rna = rna_table(data.features, data.samples, genes)
    index = _paired_index(data.patch_index, samples)
    test_rows = ((index["split"] == "test") & index["lineage_id"].isin(samples["lineage_id"])).to_numpy()
    test_rows = _with_features(data, test_rows)
    test = index[test_rows]
    if test.empty:
        raise InputDataError("patch_index", "no held-out (split == test) patch to evaluate: check the split parameters")
    return samples, rna, index, test_rows, test


def _copy_of(model):
    copy = type(model).from_config(model.config_dict())
    copy.load_state_dict(model.state_dict())
    return copy


# --- one Table 1 row -------------------------------------------------------------------------------
def build_model(
    wsi_encoder: VisionTransformer, rna_encoder: RNAMaskedAutoencoder, cfg: MultimodalConfig, row: Table1Row
) -> MultimodalModel:
    """The multimodal model of a Table 1 row: pretrained encoders (or all weights random), frozen or not."""
    torch.manual_seed(cfg.seed)
    # Fresh copies of the pretrained encoders (built from their configs, then given their weights; the modules
    # handed in stay untouched). Building them draws from the seeded stream before the projections and the
    # fusion are initialised -- as the loader did before the restructuring -- so Table 1 stays reproducible.
    rna_copy, wsi_copy = (_copy_of(m) for m in (rna_encoder, wsi_encoder))
    model = MultimodalModel.from_encoders(rna_copy, wsi_copy, **cfg.model.to_dict())
    if not row.pretrained:  # same architecture, fresh random weights everywhere
        model = MultimodalModel.from_config(model.config_dict())
    if row.freeze_encoders:
        for p in [*model.rna_encoder.parameters(), *model.wsi_encoder.parameters()]:
            p.requires_grad_(False)
    return model


def encoder_lr_scale(cfg: MultimodalConfig, row: Table1Row) -> dict[str, float] | None:
    """The optimiser's share of the rate per parameter prefix: pretrained encoders that train are fine-tuned
    gently (``encoder_lr_scale``); the projections, fusion and heads learn at the full rate. None: one rate."""
    if row.pretrained and not row.freeze_encoders:
        return {"rna_encoder.": cfg.encoder_lr_scale, "wsi_encoder.": cfg.encoder_lr_scale}
    return None


def fit_pairs(
    model: MultimodalModel,
    images: np.ndarray,
    labels: np.ndarray,
    rna_of_label: list[np.ndarray],
    cfg: MultimodalConfig,
    patches: PatchesConfig,
    recon_weight: float,
    name: str,
    run=None,
    slides: np.ndarray | None = None,
    lr_scale: dict[str, float] | None = None,
) -> dict:
    """Train ``model`` on (patch, RNA of its label) pairs with :class:`MultimodalStep` (checkpointed per
    ``name``; per-epoch metrics to ``run``). ``slides``: slide code of each patch (stain mixing across
    slides when ``patches.augment.stain_mix`` > 0); ``lr_scale``: :func:`encoder_lr_scale`. Returns
    :func:`gb_kedro.training.fit`'s result."""
    _, crop = patches.geometry
    val = np.random.default_rng(cfg.seed).random(len(labels)) < cfg.val_fraction
    augment = Augment(patches.augment.flips, patches.augment.hed_sigma, patches.augment.hed_bias)
    stain = StainMix.fit(images, slides, patches.augment.stain_mix)
    train_set = PairDataset(
        images[~val],
        labels[~val],
        rna_of_label,
        augment,
        crop=crop,
        stain=stain,
        slides=None if slides is None else slides[~val],
    )
    val_set = (
        PairDataset(images[val], labels[val], rna_of_label, crop=crop)
        if val.sum() > 1 and len(set(labels[val])) > 1
        else None
    )
    inputs = (patches.augment.to_dict(), cfg.sampler.to_dict(), labels[~val], images.shape)
    return _fit_sets(
        model, train_set, val_set, labels[~val], cfg, recon_weight, name, run, lr_scale, inputs, rna_of_label
    )


def fit_feature_pairs(
    model: MultimodalModel,
    features: np.ndarray,
    labels: np.ndarray,
    rna_of_label: list[np.ndarray],
    cfg: MultimodalConfig,
    recon_weight: float,
    name: str,
    run=None,
) -> dict:
    """:func:`fit_pairs` on precomputed patch features (``model`` with ``image: features``): no pixels, no views."""
    val = np.random.default_rng(cfg.seed).random(len(labels)) < cfg.val_fraction
    train_set = FeaturePairDataset(features[~val], labels[~val], rna_of_label)
    val_set = (
        FeaturePairDataset(features[val], labels[val], rna_of_label)
        if val.sum() > 1 and len(set(labels[val])) > 1
        else None
    )
    inputs = (cfg.sampler.to_dict(), labels[~val], features.shape, float(np.asarray(features, np.float64).sum()))
    return _fit_sets(model, train_set, val_set, labels[~val], cfg, recon_weight, name, run, None, inputs, rna_of_label)


def _fit_sets(
    model,
    train_set,
    val_set,
    train_labels,
    cfg: MultimodalConfig,
    recon_weight,
    name,
    run,
    lr_scale,
    inputs,
    rna_of_label,
) -> dict:
    """The loop of :func:`fit_pairs` / :func:`fit_feature_pairs` (``inputs``: what identifies the training data in
    the checkpoint fingerprint)."""
    loss = {**cfg.loss.to_dict(), "recon_weight": float(recon_weight)}
    step = MultimodalStep(
        cfg.loss.temperature,
        cfg.loss.itc_weight,
        cfg.loss.itm_weight,
        float(recon_weight),
        cfg.loss.mask_rna,
        cfg.loss.gene_dropout,
    )
    config = TrainConfig.of(cfg.train, cfg.seed, cfg.device)
    return fit(
        model,
        train_set,
        val_set,
        step,
        config,
        checkpoint_dir=Path(cfg.checkpoint_dir) / f"multimodal_{name}",
        on_epoch=lambda epoch, metrics: log_metrics(
            run, {k: v for k, v in metrics.items() if k != "epoch"}, step=epoch
        ),
        desc=f"multimodal {name}",
        fingerprint=fingerprint(
            model.config_dict(), config.to_dict(), loss, name, lr_scale, *inputs, [r.tolist() for r in rna_of_label]
        ),
        batch_sampler=lambda epoch: PKSampler(train_labels, cfg.sampler.p, cfg.sampler.k, seed=cfg.seed * 1000 + epoch),
        lr_scale=lr_scale,
    )


def describe_row(row: Table1Row, grouping: str | None, n_patches: int, n_lineages: int, pairing: str) -> str:
    """The model's description (MLflow registry), generated from the row's configuration."""
    if not row.train:
        what = (
            "untrained: the pretrained encoders' architecture with random weights"
            if not row.pretrained
            else "untrained"
        )
    else:
        encoders = (
            "pretrained encoders frozen"
            if row.freeze_encoders
            else ("pretrained encoders fine-tuned" if row.pretrained else "encoders trained from random weights")
        )
        losses = "image-RNA alignment (ITC), matching (ITM)" + (", RNA decoding" if row.recon_weight else "")
        what = f"{encoders}; losses: {losses}; {n_patches} training patches of {n_lineages} lineages ({pairing})"
    return f"Multimodal model, Table 1 row '{row.label}' ({grouping} gene groups): {what}"


def train_row(
    wsi_encoder: VisionTransformer,
    rna_encoder: RNAMaskedAutoencoder,
    data: PairedCohort,
    cfg: MultimodalConfig,
    patches: PatchesConfig,
    row: Table1Row,
    name: str | None = None,
    permutation: list[int] | None = None,
    register: bool = True,
    track: bool = True,
    skipped: str = "random initialisation row",
) -> tuple[MultimodalModel, pd.DataFrame]:
    """Build the model of ``row`` from the pretrained encoders (or random ones) and train it on the training
    patches of the evaluation split paired with their lineage's RNA sample, in a nested MLflow run
    ``multimodal.<name>`` (``name`` defaults to the row's).

    ``permutation``: the permutation null -- training lineage i is paired with the RNA sample of training
    lineage ``permutation[i]`` instead of its own. ``register``: register the model in MLflow; ``track``: a nested
    run at all; ``skipped``: why a row that does not train is not trained (logged).
    Returns the model (``meta``: row, label, grouping, genes, lineages, trained, MLflow run) and the history."""
    name = name or row.name
    model = build_model(wsi_encoder, rna_encoder, cfg, row)
    genes = rna_encoder.meta["genes"]
    grouping = rna_encoder.meta.get("variant")
    train_rows, lineages, labels, rna_of_label = training_pairs(data, genes)
    if permutation is not None:
        rna_of_label = [rna_of_label[p] for p in permutation]
    pairing = (
        "permuted: each lineage's patches with another lineage's RNA" if permutation is not None else "own lineage"
    )
    params = {
        "row": name,
        "label": row.label,
        "rna_grouping": grouping,
        "pretrained": row.pretrained,
        "trained": row.train,
        "freeze_encoders": row.freeze_encoders,
        "lineages": len(lineages),
        "train_patches": len(labels),
        **{k: v for k, v in cfg.to_dict().items() if k not in ("checkpoint_dir", "loss", "table1", "retrainings")},
        "loss": {**cfg.loss.to_dict(), "recon_weight": row.recon_weight},
        "pairing": pairing,
    }
    history: list[dict] = []
    trained_now = False
    with nested_run(f"multimodal.{name}", params) if track else nullcontext() as run:
        if row.train:
            images = data.pixels.rows(train_rows)
            slides = pd.factorize(data.patch_index.reset_index(drop=True).loc[train_rows, "slide_id"])[0]
            result = fit_pairs(
                model,
                images,
                labels,
                rna_of_label,
                cfg,
                patches,
                row.recon_weight,
                name,
                run,
                slides,
                encoder_lr_scale(cfg, row),
            )
            history, trained_now = result["history"], result["epochs_run"] > 0
            logger.info(
                "multimodal.%s: %d epochs (%s), device %s",
                name,
                len(history),
                kept_epoch(result, cfg.train.keep),
                result["device"],
            )
        else:
            logger.info("multimodal.%s: not trained (%s)", name, skipped)
        description = describe_row(row, grouping, len(labels), len(lineages), pairing)
        _finish_row(model, data, cfg, row, name, genes, lineages, grouping, run, trained_now, register, description)
    return model, pd.DataFrame(history) if history else pd.DataFrame(
        columns=["epoch", "train/loss"]
    )  # untrained: a header only


def _finish_row(
    model, data, cfg, row, name, genes, lineages, grouping, run, trained_now, register, description, **meta
) -> None:
    """A row's model after training: every weight trainable again, on the CPU in eval mode, described (``meta``
    added) and -- trained now, or the untrained row's first time -- registered in MLflow."""
    for p in model.parameters():
        p.requires_grad_(True)
    model.cpu().eval().describe(
        row=name,
        label=row.label,
        rna_grouping=grouping,
        genes=genes,
        lineages=lineages,
        trained=bool(row.train),
        training={"epochs": cfg.train.epochs, "fusion_depth": cfg.model.fusion_depth},
        mlflow_run_id=run.info.run_id if run is not None else None,
        **meta,
    )
    registered = f"gb_kedro.multimodal.{name}"
    # a new version only for a model trained now (or the untrained row's first registration, without alias)
    if register and (trained_now or (not row.train and not registered_versions(registered))):
        tags = {
            "row": name,
            "split": made_with(data.patch_index).get("split", {}).get("mode"),
            "commit": git_commit(),
        }
        log_torch_model(run, model, registered, description, tags, alias=trained_now)


def features_cohort(
    embeddings: pd.DataFrame, patch_index: pd.DataFrame, cohort_features: pd.DataFrame, cohort_samples: pd.DataFrame
) -> PairedCohort:
    """The paired cohort of a patch encoder's row: its per-patch features (``e``-numbered columns of
    ``embeddings``, the patch index's rows in order; NaN rows: no feature row) instead of pixels."""
    values = embeddings[numbered_columns(embeddings, "e")].to_numpy(np.float32)
    return PairedCohort(patch_index, None, cohort_features, cohort_samples, values)


def build_feature_model(
    rna_encoder: RNAMaskedAutoencoder, in_dim: int, cfg: MultimodalConfig, row: Table1Row, adapter: FeatureAdapterRow
) -> MultimodalModel:
    """The multimodal model of a patch encoder's row: an adapter on its ``in_dim``-wide features as the image side
    (:class:`~gb_kedro.models.adapter.FeatureAdapter`), the RNA encoder pretrained (or random) and frozen or not."""
    torch.manual_seed(cfg.seed)
    config = MultimodalModelConfig(
        rna=rna_encoder.config_dict(),
        wsi={"in_dim": int(in_dim), "dim": adapter.width, "dropout": adapter.dropout},
        image="features",
        **cfg.model.to_dict(),
    )
    model = MultimodalModel(config)
    if row.pretrained:
        model.rna_encoder.load_state_dict(rna_encoder.state_dict())
    if row.freeze_encoders:
        for p in model.rna_encoder.parameters():
            p.requires_grad_(False)
    return model


def train_features_row(
    rna_encoder: RNAMaskedAutoencoder,
    data: PairedCohort,
    cfg: MultimodalConfig,
    adapter: FeatureAdapterRow,
    encoder: str,
) -> tuple[MultimodalModel, pd.DataFrame]:
    """Table 1 row ``<encoder>_adapter``: patch encoder ``encoder``'s features (``data.patch_features``; patches
    without a row left out) through a trainable adapter, aligned with the RNA of their lineage by the model row's
    losses (:class:`MultimodalStep`) in a nested MLflow run. Returns the model and its history."""
    row = adapter.row(encoder)
    genes = rna_encoder.meta["genes"]
    grouping = rna_encoder.meta.get("variant")
    train_rows, lineages, labels, rna_of_label = training_pairs(data, genes)
    model = build_feature_model(rna_encoder, data.patch_features.shape[1], cfg, row, adapter)
    params = {
        "row": row.name,
        "label": row.label,
        "patch_encoder": encoder,
        "rna_grouping": grouping,
        "freeze_encoders": row.freeze_encoders,
        "lineages": len(lineages),
        "train_patches": len(labels),
        "adapter": adapter.to_dict(),
        **{k: v for k, v in cfg.to_dict().items() if k not in ("checkpoint_dir", "loss", "table1", "retrainings")},
        "loss": {**cfg.loss.to_dict(), "recon_weight": row.recon_weight},
    }
    with nested_run(f"multimodal.{row.name}", params) as run:
        result = fit_feature_pairs(
            model, data.patch_features[train_rows], labels, rna_of_label, cfg, row.recon_weight, row.name, run
        )
        logger.info(
            "multimodal.%s: %d epochs (%s)", row.name, len(result["history"]), kept_epoch(result, cfg.train.keep)
        )
        description = (
            f"Multimodal model, Table 1 row '{row.label}' ({grouping} gene groups): {encoder} features of "
            f"{len(labels)} training patches of {len(lineages)} lineages through a trainable adapter"
        )
        trained_now = result["epochs_run"] > 0
        _finish_row(
            model,
            data,
            cfg,
            row,
            row.name,
            genes,
            lineages,
            grouping,
            run,
            trained_now,
            True,
            description,
            patch_encoder=encoder,
        )
    return model, pd.DataFrame(result["history"])


# --- retrainings of the model row (Table 2's seeds and permutation null) ---------------------------
def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation without fixed points (every lineage gets another lineage's RNA)."""
    while True:
        perm = rng.permutation(n)
        if n < 2 or not (perm == np.arange(n)).any():
            return perm


def null_pairing(n_lineages: int, seed: int, draw: int) -> list[int]:
    """The ``draw``-th derangement of one seeded stream (draws 0, 1, ... are the successive retrainings)."""
    rng = np.random.default_rng(seed)
    for _ in range(draw + 1):
        perm = derangement(n_lineages, rng)
    return perm.tolist()


def train_seed(
    wsi_encoder,
    rna_encoder,
    data: PairedCohort,
    cfg: MultimodalConfig,
    patches: PatchesConfig,
    row: Table1Row,
    slot: int,
) -> tuple[MultimodalModel, pd.DataFrame]:
    """Seed ``slot`` (1 ..) of Table 2's seed stability: the model row retrained with seed ``multimodal.seed +
    slot`` (not registered); untrained (``meta['trained']`` False) beyond ``retrainings.seeds - 1``."""
    active = slot < cfg.retrainings.seeds
    return train_row(
        wsi_encoder,
        rna_encoder,
        data,
        dataclasses.replace(cfg, seed=cfg.seed + slot),
        patches,
        dataclasses.replace(row, train=row.train and active),
        name=f"{row.name}_seed_{slot}",
        register=False,
        track=active,
        skipped=f"multimodal.retrainings.seeds = {cfg.retrainings.seeds}",
    )


def train_null(
    wsi_encoder,
    rna_encoder,
    data: PairedCohort,
    cfg: MultimodalConfig,
    patches: PatchesConfig,
    row: Table1Row,
    draw: int,
) -> tuple[MultimodalModel, pd.DataFrame]:
    """Retraining ``draw`` (0 ..) of the permutation null: the model row trained with every training lineage's
    patches paired with another lineage's RNA sample (a derangement drawn from ``multimodal.seed``; not
    registered); untrained beyond ``retrainings.permutations``."""
    active = draw < cfg.retrainings.permutations
    _, lineages, _, _ = training_pairs(data, rna_encoder.meta["genes"])
    return train_row(
        wsi_encoder,
        rna_encoder,
        data,
        cfg,
        patches,
        dataclasses.replace(row, train=row.train and active),
        name=f"null_{draw}",
        permutation=null_pairing(len(lineages), cfg.seed, draw),
        register=False,
        track=active,
        skipped=f"multimodal.retrainings.permutations = {cfg.retrainings.permutations}",
    )


# --- evaluation ------------------------------------------------------------------------------------
def _predictions(test: pd.DataFrame, samples: pd.DataFrame, sim: np.ndarray, ranked: np.ndarray) -> pd.DataFrame:
    predictions = test[["slide_id", "x", "y", "lineage_id", "patient_id", "mouse_id", "held_out"]].reset_index(
        drop=True
    )
    for k in range(ranked.shape[1]):
        predictions[f"sample_{k + 1}"] = samples["sample_id"].to_numpy()[ranked[:, k]]
        predictions[f"similarity_{k + 1}"] = np.take_along_axis(sim, ranked[:, k : k + 1], axis=1)[:, 0]
    predictions["predicted_lineage"] = samples["lineage_id"].to_numpy()[ranked[:, 0]]
    return predictions


def score_sets(
    sim: np.ndarray, test: pd.DataFrame, samples: pd.DataFrame, index: pd.DataFrame, cfg: MultimodalConfig
) -> dict[str, dict]:
    """Table 1 metrics of each held-out set from the similarity of every held-out patch to every cohort RNA
    sample (intervals by slide; unseen lineages also among their own samples only)."""
    return score_held_out_sets(
        sim,
        test["held_out"].to_numpy(),
        test["lineage_id"].to_numpy(),
        test["slide_id"].to_numpy(),
        samples["lineage_id"].to_numpy(),
        patient_of(samples, index),
        cfg.evaluation.top_k,
        cfg.evaluation.n_boot,
        cfg.seed,
    )


def _log_sets(name: str, split: SplitConfig, sets: dict[str, dict]) -> None:
    logger.info(
        "multimodal.%s (%s split) lineage accuracy: %s",
        name,
        split.mode,
        "; ".join(
            f"{s} {m['lineage_accuracy']:.3f} [{m['lineage_accuracy_ci_low']:.3f}, {m['lineage_accuracy_ci_high']:.3f}]"
            f" (chance {m['lineage_chance']:.3f})"
            for s, m in sets.items()
        ),
    )


def retrieve_held_out(model: MultimodalModel, data: PairedCohort, cfg: MultimodalConfig, patches: PatchesConfig):
    """Eq. 9 on every held-out patch against every cohort RNA sample: (samples, paired index, held-out rows,
    similarities [held-out patches, samples], the ``top_k`` samples of each patch, best first)."""
    samples, rna, index, test_rows, test = held_out_pairs(data, model.meta["genes"])
    device = resolve_device(cfg.device)
    if data.patch_features is not None:
        image_z = embed_features(model, data.patch_features[test_rows], patches.inference_batch_size, device)
    else:
        image_z = embed_images(model, data.pixels.rows(test_rows), patches, device=device)
    rna_z = embed_rna(model, rna, cfg.evaluation.rna_batch_size, device=device)
    sim, ranked = retrieval(image_z, rna_z, top=min(cfg.evaluation.top_k, len(samples)))
    return samples, index, test, sim, ranked


def predict_held_out(
    model: MultimodalModel, data: PairedCohort, cfg: MultimodalConfig, patches: PatchesConfig
) -> pd.DataFrame:
    """Per held-out patch, the top-k RNA samples it retrieves (eq. 9) and their similarities; an empty table
    for a model that was not trained (a retraining slot left out)."""
    if not model.meta.get("trained", True):
        return pd.DataFrame(columns=["slide_id", "x", "y", "lineage_id", "sample_1"])
    samples, _, test, sim, ranked = retrieve_held_out(model, data, cfg, patches)
    return _predictions(test, samples, sim, ranked)


def evaluate_row(
    model: MultimodalModel, data: PairedCohort, split: SplitConfig, cfg: MultimodalConfig, patches: PatchesConfig
) -> tuple[dict, Figure, pd.DataFrame]:
    """Eq. 9 on every held-out patch against every cohort RNA sample: Table 1 metrics of this row, a
    confusion plot and the per-patch predictions (top-k sample IDs and similarities)."""
    meta = model.meta
    samples, index, test, sim, ranked = retrieve_held_out(model, data, cfg, patches)
    sets = score_sets(sim, test, samples, index, cfg)
    metrics = {
        "configuration": meta.get("label", meta["row"]),
        "row": meta["row"],
        "split": split.mode,
        "rna_grouping": meta.get("rna_grouping"),
        "sets": sets,
    }
    predictions = _predictions(test, samples, sim, ranked)
    figure = _confusion(predictions, metrics)
    log_evaluation(
        f"multimodal.{meta['row']}",
        meta.get("mlflow_run_id"),
        flat_set_metrics(sets),
        figure,
        f"retrieval_confusion_{meta['row']}.png",
    )
    _log_sets(meta["row"], split, sets)
    return metrics, figure, predictions


def embed_cohort(
    model: MultimodalModel, data: PairedCohort, cfg: MultimodalConfig, patches: PatchesConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model's projected embeddings of every tumour patch (train and held out, with the index columns and
    the RNA sample each retrieves) and of every cohort RNA sample: what the survival analysis groups."""
    samples, rna = rna_table(data.features, data.samples, model.meta["genes"])
    rna_z = embed_rna(model, rna, cfg.evaluation.rna_batch_size)
    image_z = embed_images(model, data.pixels.images, patches)
    _, ranked = retrieval(image_z, rna_z, top=1)
    columns = ["slide_id", "x", "y", "lineage_id", "patient_id", "mouse_id", "split"]
    index = data.patch_index.reset_index(drop=True)
    patches_z = pd.concat(
        [index[columns], pd.DataFrame(image_z, columns=[f"z{i}" for i in range(image_z.shape[1])])], axis=1
    )
    patches_z["retrieved_sample"] = samples["sample_id"].to_numpy()[ranked[:, 0]]
    rna_frame = pd.concat(
        [
            samples[["sample_id", "lineage_id", "patient_id"]],
            pd.DataFrame(rna_z, columns=[f"z{i}" for i in range(rna_z.shape[1])]),
        ],
        axis=1,
    )
    return patches_z, rna_frame


def _confusion(predictions: pd.DataFrame, metrics: dict) -> Figure:
    """Confusion of the hardest held-out set of seen lineages (unseen mice when there are, else all)."""
    sets = metrics["sets"]
    name = "mouse" if "mouse" in sets else next(iter(sets))
    rows = predictions["held_out"] == name
    m = sets[name]
    return confusion_figure(
        predictions.loc[rows, "lineage_id"],
        predictions.loc[rows, "predicted_lineage"],
        f"{metrics['configuration']} ({SET_LABELS[name]}): lineage {m['lineage_accuracy']:.2f}, "
        f"patient {m['patient_accuracy']:.2f} (chance {m['lineage_chance']:.2f} / {m['patient_chance']:.2f})",
        xlabel="lineage of the retrieved RNA sample",
    )


# --- the non-deep rows -----------------------------------------------------------------------------
def colour_row(
    colour_features: pd.DataFrame, data: PairedCohort, split: SplitConfig, cfg: MultimodalConfig, row: ColourRow
) -> tuple[dict, pd.DataFrame]:
    """The colour row of Table 1: colour histogram + stain statistics (``colour_features``, rows as the patch index)
    -> RNA vector by ridge regression fit on the training pairs, then the same retrieval as eq. 9 (cosine to every
    cohort RNA sample)."""
    columns = colour_columns(colour_features)
    features = f"RGB histograms + channel mean/std ({len(columns)} colour features)"
    return feature_row(colour_features[columns].to_numpy(np.float64), features, data, split, cfg, row)


def morphometry_row(
    morphometry_features: pd.DataFrame,
    data: PairedCohort,
    split: SplitConfig,
    cfg: MultimodalConfig,
    row: MorphometryRow,
) -> tuple[dict, pd.DataFrame]:
    """The pixel-morphometry row of Table 1: per-patch nuclear features -> RNA vector by ridge regression fit on
    the training pairs, then the same retrieval as eq. 9."""
    values = morphometry_features[list(MORPHOMETRY_FEATURES)].to_numpy(np.float64)
    features = f"{len(MORPHOMETRY_FEATURES)} nuclear / tumour morphometry features (slides/morphometry.py)"
    return feature_row(values, features, data, split, cfg, row)


def _split_rows(data: PairedCohort):
    """(samples, their RNA vectors over every cohort gene, paired index, training-row mask, held-out-row mask,
    held-out rows)."""
    samples, rna, index, test_rows, test = held_out_pairs(data, list(data.features.columns))
    train_rows = ((index["split"] == "train") & index["lineage_id"].isin(samples["lineage_id"])).to_numpy()
    return samples, rna, index, train_rows, test_rows, test


def feature_retrieval(values: np.ndarray, data: PairedCohort, ridge_log10_alphas: list[float]):
    """Per-patch features ``values`` (rows as the patch index) -> RNA vector by a ridge map fit on the training
    pairs only, then eq. 9's cosine retrieval of every held-out patch among the cohort's RNA samples. Returns
    (similarities [held-out patches, samples], fitted map, samples, paired index, held-out rows)."""
    samples, rna, index, train_rows, test_rows, test = _split_rows(data)
    row_of_lineage = {lab: i for i, lab in enumerate(samples["lineage_id"])}  # one sample per lineage: the first
    train_rna = rna[[row_of_lineage[lab] for lab in index.loc[train_rows, "lineage_id"]]]
    alphas = np.logspace(*ridge_log10_alphas)
    sim, fitted = feature_baseline_retrieval(values[train_rows], train_rna, values[test_rows], rna, alphas)
    return sim, fitted, samples, index, test


def classifier_retrieval(values: np.ndarray, data: PairedCohort, classifier: LineageClassifierConfig):
    """Per-patch features -> the lineage classifier (fit on the training patches only, its penalty chosen on whole
    training mice) -> eq. 9's ranking of the cohort's RNA samples by :func:`~gb_kedro.baselines.classifier_similarity`
    (the classifier's lineage first). Returns (similarities, fitted classifier, its choice, samples, paired index,
    held-out rows)."""
    samples, rna, index, train_rows, test_rows, test = _split_rows(data)
    train = index[train_rows]
    fitted, choice = fit_lineage_classifier(
        values[train_rows], train["lineage_id"].to_numpy(), train["mouse_id"].to_numpy(), classifier
    )
    proba = fitted.predict_proba(values[test_rows])
    sim = classifier_similarity(proba, fitted.classes_, samples["lineage_id"].to_numpy(), rna)
    return sim, fitted, choice, samples, index, test


def bridge_retrieval(values: np.ndarray, data: PairedCohort, row: BridgeRow):
    """Per-patch features -> :func:`~gb_kedro.baselines.expression_bridge` (genes chosen and the map fit on the
    training lineages and patches only) -> similarities to every cohort RNA sample. Returns (similarities, the
    bridge's record, samples, paired index, held-out rows)."""
    samples, rna, index, train_rows, test_rows, test = _split_rows(data)
    train = index[train_rows]
    first = samples.drop_duplicates("lineage_id").reset_index()  # one sample per lineage: the first
    lineage_rna = {lab: rna[i] for i, lab in zip(first["index"], first["lineage_id"], strict=True)}
    lineage_rna = {lab: v for lab, v in lineage_rna.items() if lab in set(train["lineage_id"])}
    sim, record = expression_bridge(
        values[train_rows],
        train["lineage_id"].to_numpy(),
        lineage_rna,
        values[test_rows],
        rna,
        row.n_genes,
        row.inner_folds,
        np.logspace(*row.ridge_log10_alphas),
    )
    return sim, record, samples, index, test


def _row_result(
    row, split: SplitConfig, cfg: MultimodalConfig, sim, samples, index, test, extra: dict, run
) -> tuple[dict, pd.DataFrame]:
    sets = score_sets(sim, test, samples, index, cfg)
    metrics = {
        "configuration": row.label,
        "row": row.name,
        "split": split.mode,
        "rna_grouping": None,
        **extra,
        "sets": sets,
    }
    log_metrics(run, {f"eval/{k}": v for k, v in flat_set_metrics(sets).items()})
    _log_sets(row.name, split, sets)
    ranked = np.argsort(-sim, axis=1, kind="stable")[:, : min(cfg.evaluation.top_k, len(samples))]
    return metrics, _predictions(test, samples, sim, ranked)


def feature_row(
    values: np.ndarray,
    features: str,
    data: PairedCohort,
    split: SplitConfig,
    cfg: MultimodalConfig,
    row: ColourRow | MorphometryRow,
) -> tuple[dict, pd.DataFrame]:
    """A non-deep Table 1 row: per-patch features ``values`` (rows as the patch index) -> RNA vector by
    ridge regression fit on the training pairs only, then eq. 9's retrieval on every held-out set. Returns its
    metrics and per-patch predictions (top-k samples, as the deep rows')."""
    params = {"row": row.name, "label": row.label, "features": features, "map": "StandardScaler + RidgeCV"}
    with nested_run(f"multimodal.{row.name}", params) as run:
        sim, fitted, samples, index, test = feature_retrieval(values, data, row.ridge_log10_alphas)
        log_sklearn_model(run, fitted)
        return _row_result(row, split, cfg, sim, samples, index, test, {"ridge_alpha": float(fitted[-1].alpha_)}, run)


def classifier_row(
    morphometry_features: pd.DataFrame,
    data: PairedCohort,
    split: SplitConfig,
    cfg: MultimodalConfig,
    row: ClassifierRow,
    classifier: LineageClassifierConfig,
) -> tuple[dict, pd.DataFrame]:
    """The strong baseline row of Table 1: the richer morphometry (:data:`~gb_kedro.slides.morphometry.ALL_FEATURES`)
    -> a logistic regression of the training patches' lineage -> that lineage's RNA sample first (eq. 9's ranking
    of :func:`classifier_retrieval`). Metrics and per-patch predictions."""
    values = morphometry_features[list(ALL_MORPHOMETRY_FEATURES)].to_numpy(np.float64)
    params = {
        "row": row.name,
        "label": row.label,
        "features": f"{len(ALL_MORPHOMETRY_FEATURES)} morphometry features (slides/morphometry.py ALL_FEATURES)",
        "map": "StandardScaler + LogisticRegression (C by GroupKFold over training mice)",
    }
    with nested_run(f"multimodal.{row.name}", params) as run:
        sim, fitted, choice, samples, index, test = classifier_retrieval(values, data, classifier)
        log_metrics(run, {f"cv_accuracy_C_{c:g}": a for c, a in choice["cv_accuracy"].items()})
        log_sklearn_model(run, fitted)
        extra = {"inverse_penalty": choice["inverse_penalty"]}
        return _row_result(row, split, cfg, sim, samples, index, test, extra, run)


def bridge_row(
    morphometry_features: pd.DataFrame,
    data: PairedCohort,
    split: SplitConfig,
    cfg: MultimodalConfig,
    row: BridgeRow,
) -> tuple[dict, pd.DataFrame]:
    """The expression-bridge row of Table 1: the richer morphometry -> the expression of the genes that follow it
    across the training lineages (how many: chosen on held-out training lineages) -> the nearest RNA sample in those
    genes (a row that can answer for unseen lineages). Metrics (with the genes kept) and per-patch predictions."""
    values = morphometry_features[list(ALL_MORPHOMETRY_FEATURES)].to_numpy(np.float64)
    params = {
        "row": row.name,
        "label": row.label,
        "features": f"{len(ALL_MORPHOMETRY_FEATURES)} morphometry features (slides/morphometry.py ALL_FEATURES)",
        "n_genes": row.n_genes,
        "map": "genes by leave-one-training-lineage-out ridge R^2; StandardScaler + RidgeCV to their z-scores",
    }
    with nested_run(f"multimodal.{row.name}", params) as run:
        sim, record, samples, index, test = bridge_retrieval(values, data, row)
        genes = np.asarray(data.features.columns)[record["genes"]]
        r2 = record["r2"][record["genes"]]
        extra = {
            "ridge_alpha": record["ridge_alpha"],
            "n_genes_kept": len(genes),
            "genes_r2_min": float(r2.min()),
            "inner_accuracy": {str(n): a for n, a in record["inner_accuracy"].items()},
            "genes": [str(g) for g in genes],
        }
        log_metrics(run, {f"inner_accuracy_{n}_genes": a for n, a in record["inner_accuracy"].items()})
        log_sklearn_model(run, record["model"])
        return _row_result(row, split, cfg, sim, samples, index, test, extra, run)

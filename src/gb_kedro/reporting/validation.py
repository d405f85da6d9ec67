"""Scoring gene rankings against the embedded cohort's planted truth (``synthetic_truth/``; read only here).

Table 2's precision@n and recall of the planted drivers, beside (a) the genes of highest cohort expression
variance, (b) random genes (expected value) and (c) a permutation null: the reporting row's model RETRAINED
with each training lineage's patches paired with another lineage's RNA sample (a derangement), then the
same retrieval, Grad-CAM and Table 2 (one namespaced pipeline per retraining).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from gb_kedro.config import MultimodalConfig, ReportingConfig, WSIEncodingConfig
from gb_kedro.errors import InputDataError
from gb_kedro.genes import strip_version
from gb_kedro.models.multimodal import MultimodalModel
from gb_kedro.multimodal import train_row, training_pairs
from gb_kedro.reporting.seeds import held_out_counts, top_genes

logger = logging.getLogger(__name__)

# Namespaced permutation-null pipelines in the reporting pipeline (``permutation_0`` ...); the first
# ``reporting.n_permutations`` of them retrain, the others pass through without training.
PERMUTATION_SLOTS = 5


def precision_recall(selected: Iterable[str], truth: set[str]) -> tuple[float, float]:
    selected = list(selected)
    hits = len(set(selected) & truth)
    return hits / max(len(selected), 1), hits / max(len(truth), 1)


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


def planted_drivers(truth_drivers: pd.DataFrame, universe: list[str]) -> set[str]:
    drivers = {strip_version(g) for g in truth_drivers.loc[truth_drivers["role"] == "driver", "gene_id"]} & set(
        universe
    )
    if not drivers:
        raise InputDataError("synthetic_truth/drivers.tsv", "no planted driver gene among the model genes")
    return drivers


def null_precision(
    model: MultimodalModel,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    truth_drivers: pd.DataFrame,
    cfg: ReportingConfig,
    mm: MultimodalConfig,
    wsi: WSIEncodingConfig,
) -> float:
    """Precision@n of the planted drivers in the Table 2 of a model trained on shuffled pairs: its held-out
    patches retrieve an RNA sample (eq. 9), Grad-CAM with that sample, top-k genes, occurrence
    (:func:`gb_kedro.reporting.seeds.held_out_counts`)."""
    genes = model.meta["genes"]
    if not model.meta.get("trained", False) or truth_drivers.empty:
        return float("nan")
    universe = [strip_version(g) for g in genes]
    counts = held_out_counts(model, patch_index, slide_manifest, cohort_features, cohort_samples, cfg, mm, wsi)
    top = [universe[i] for i in top_genes(counts, cfg.table_size)]
    precision = precision_recall(top, planted_drivers(truth_drivers, universe))[0]
    logger.info("permutation null (%s): precision@%d %.3f", model.meta.get("row"), cfg.table_size, precision)
    return precision


def validate(
    occurrence: pd.DataFrame,
    model: MultimodalModel,
    cohort_features: pd.DataFrame,
    truth_drivers: pd.DataFrame,
    null: list[float],
    n_test_patches: int,
    cfg: ReportingConfig,
) -> dict:
    """Planted-driver precision@n and recall of Table 2 against variance, random and the permutation null."""
    n = cfg.table_size
    genes = model.meta["genes"]
    universe = [strip_version(g) for g in genes]
    drivers = planted_drivers(truth_drivers, universe)
    gradcam_p, gradcam_r = precision_recall(occurrence["gene_id_unversioned"].head(n), drivers)
    variance = cohort_features[genes].var(axis=0).to_numpy()
    var_p, var_r = precision_recall([universe[i] for i in np.argsort(-variance, kind="stable")[:n]], drivers)
    null = np.asarray(null, float)
    metrics = {
        "table_size": n,
        "n_drivers_planted": len(drivers),
        "n_genes": len(universe),
        "n_patches": int(n_test_patches),
        "gradcam_precision": gradcam_p,
        "gradcam_recall": gradcam_r,
        "variance_precision": var_p,
        "variance_recall": var_r,
        "random_precision_expected": len(drivers) / len(universe),
        "permutation_null_mean": float(null.mean()) if len(null) else float("nan"),
        "permutation_null_p95": float(np.quantile(null, 0.95)) if len(null) else float("nan"),
        "permutation_null_values": null.round(4).tolist(),
        "permutation_p_value": float((1 + (null >= gradcam_p).sum()) / (1 + len(null))),
        "n_permutations": len(null),
        "gradcam_drivers_found": ",".join(sorted(set(occurrence["gene_id_unversioned"].head(n)) & drivers)),
    }
    logger.info(
        "Grad-CAM precision@%d %.3f (variance %.3f, random %.3f, permutation null p95 %.3f)",
        n,
        gradcam_p,
        var_p,
        metrics["random_precision_expected"],
        metrics["permutation_null_p95"],
    )
    return metrics


def train_null(
    wsi_encoder,
    rna_encoder,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    truth_drivers: pd.DataFrame,
    cfg: ReportingConfig,
    mm: MultimodalConfig,
    wsi: WSIEncodingConfig,
    row,
    draw: int,
):
    """Retraining ``draw`` of the permutation null: the reporting row's model trained on deranged pairs
    (not trained, and not registered, when there is no planted truth to score it against)."""
    if cfg.n_permutations > PERMUTATION_SLOTS:
        raise InputDataError(
            cfg.SOURCE,
            f"reporting.n_permutations is {cfg.n_permutations}; the pipeline holds {PERMUTATION_SLOTS} null retrainings at most",
        )
    _, lineages, _, _ = training_pairs(patch_index, cohort_features, cohort_samples, rna_encoder.meta["genes"])
    active = draw < cfg.n_permutations and not truth_drivers.empty
    if not active:
        logger.info(
            "reporting: permutation null %d not trained (reporting.n_permutations = %d; planted truth: %s)",
            draw,
            cfg.n_permutations,
            not truth_drivers.empty,
        )
    row = dataclasses.replace(row, train=row.train and active)
    model, history = train_row(
        wsi_encoder,
        rna_encoder,
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        mm,
        wsi,
        row,
        name=f"null_{draw}",
        permutation=null_pairing(len(lineages), cfg.seed, draw),
        register=False,
        track=active,
    )
    return model.describe(trained=active), history

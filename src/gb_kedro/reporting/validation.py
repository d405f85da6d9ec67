"""Scoring gene rankings against the embedded cohort's planted truth (``synthetic_truth/``; read only here).

Table 2's precision@n and recall of the planted drivers, beside (a) the genes of highest cohort expression
variance, (b) random genes (expected value) and (c) a permutation null: the model row RETRAINED with each
training lineage's patches paired with another lineage's RNA sample (a derangement; the multimodal pipeline's
``null_<k>`` namespaces), then the same retrieval, Grad-CAM and Table 2.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from gb_kedro.config import ReportingConfig
from gb_kedro.errors import InputDataError
from gb_kedro.genes import strip_version
from gb_kedro.models.multimodal import MultimodalModel
from gb_kedro.reporting.seeds import top_genes

logger = logging.getLogger(__name__)


def precision_recall(selected: Iterable[str], truth: set[str]) -> tuple[float, float]:
    selected = list(selected)
    hits = len(set(selected) & truth)
    return hits / max(len(selected), 1), hits / max(len(truth), 1)


def planted_drivers(truth_drivers: pd.DataFrame, universe: list[str]) -> set[str]:
    drivers = {strip_version(g) for g in truth_drivers.loc[truth_drivers["role"] == "driver", "gene_id"]} & set(
        universe
    )
    if not drivers:
        raise InputDataError("synthetic_truth/drivers.tsv", "no planted driver gene among the model genes")
    return drivers


def null_precision(counts: np.ndarray, genes: list[str], truth_drivers: pd.DataFrame, n: int) -> float:
    """Precision@n of the planted drivers in the Table 2 of a permutation-null model (``counts``: its per-gene
    held-out Grad-CAM occurrence, :func:`gb_kedro.reporting.gradcam.gene_counts`)."""
    universe = [strip_version(g) for g in genes]
    top = [universe[i] for i in top_genes(counts, n)]
    return precision_recall(top, planted_drivers(truth_drivers, universe))[0]


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

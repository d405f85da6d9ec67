"""Nodes of the ``reporting`` pipeline: parameters into typed configs, then :mod:`gb_kedro.reporting`."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from gb_kedro.config import (
    MultimodalConfig,
    ReportingConfig,
    RNAEncodingConfig,
    SplitConfig,
    Table1Row,
    WSIEncodingConfig,
)
from gb_kedro.reporting import enrichment, gradcam, report, survival, validation
from gb_kedro.tracking import log_figure, log_parent_metrics

logger = logging.getLogger(__name__)


def rank_genes_gradcam(
    model,
    predictions: pd.DataFrame,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    gene_groups: pd.DataFrame,
    options: dict,
    wsi_options: dict,
):
    """Table 2: Grad-CAM of each held-out patch with its predicted RNA sample; occurrence, groups, per patch, figure."""
    out = gradcam.rank_genes(
        model,
        predictions,
        patch_index,
        slide_manifest,
        cohort_features,
        gene_groups,
        ReportingConfig.from_dict(options),
        WSIEncodingConfig.from_dict(wsi_options),
    )
    log_figure(out[-1], "gradcam.png")
    logger.info("Table 2 (Grad-CAM top %d): %s", len(out[1]), ", ".join(out[1]["symbol"]))
    return out


def permutation_null_trainer(draw: int):
    """The training node of permutation-null retraining ``draw`` (one namespaced pipeline per draw)."""

    def train_permutation_null(
        wsi_encoder,
        rna_encoder,
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        truth_drivers,
        options: dict,
        multimodal_options: dict,
        wsi_options: dict,
        row: dict,
    ):
        """The reporting row's model retrained with every training lineage paired with another lineage's RNA."""
        return validation.train_null(
            wsi_encoder,
            rna_encoder,
            patch_index,
            slide_manifest,
            cohort_features,
            cohort_samples,
            truth_drivers,
            ReportingConfig.from_dict(options),
            MultimodalConfig.from_dict(multimodal_options),
            WSIEncodingConfig.from_dict(wsi_options),
            Table1Row.from_dict(row),
            draw,
        )

    return train_permutation_null


def score_permutation_null(
    model,
    patch_index,
    slide_manifest,
    cohort_features,
    cohort_samples,
    truth_drivers,
    options: dict,
    multimodal_options: dict,
    wsi_options: dict,
) -> float:
    """Planted-driver precision@n of the Table 2 of one permutation-null model."""
    return validation.null_precision(
        model,
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        truth_drivers,
        ReportingConfig.from_dict(options),
        MultimodalConfig.from_dict(multimodal_options),
        WSIEncodingConfig.from_dict(wsi_options),
    )


def validate_against_truth(
    occurrence: pd.DataFrame,
    model,
    predictions: pd.DataFrame,
    cohort_features: pd.DataFrame,
    truth_drivers: pd.DataFrame,
    options: dict,
    *null_precisions: float,
) -> dict:
    """Embedded cohort only: Table 2 against variance, random and the permutation null (empty on real data)."""
    cfg = ReportingConfig.from_dict(options)
    if truth_drivers.empty:  # real data: no planted truth (the catalog entry is optional)
        logger.info("reporting: no planted truth (synthetic_truth/drivers.tsv): validation skipped")
        return {}
    metrics = validation.validate(
        occurrence,
        model,
        cohort_features,
        truth_drivers,
        list(null_precisions[: cfg.n_permutations]),
        len(predictions),
        cfg,
    )
    log_parent_metrics(
        {
            f"genes/{k}": v
            for k, v in metrics.items()
            if k.endswith(("precision", "recall", "p_value", "null_mean", "null_p95"))
        }
    )
    return metrics


def enrich_top_genes(occurrence: pd.DataFrame, gene_table: pd.DataFrame, options: dict) -> pd.DataFrame:
    """Hypergeometric enrichment of the top Grad-CAM genes in the configured GMT files."""
    return enrichment.enrich(
        occurrence["gene_id_unversioned"], gene_table, ReportingConfig.from_dict(options).enrichment
    )


def aggressiveness(
    model,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    options: dict,
    multimodal_options: dict,
    wsi_options: dict,
):
    """Lineage clusters vs mouse survival (Kaplan-Meier, log-rank) and patient OS/PFS."""
    out = survival.aggressiveness(
        model,
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        ReportingConfig.from_dict(options),
        MultimodalConfig.from_dict(multimodal_options),
        WSIEncodingConfig.from_dict(wsi_options),
    )
    log_figure(out[-1], "survival_km.png")
    return out


def training_curves(
    rna_ppi: pd.DataFrame, rna_chromosome: pd.DataFrame, wsi_history: pd.DataFrame, **multimodal_histories: pd.DataFrame
) -> Figure:
    """Per-epoch losses of every trained model (keyword arguments: Table 1 row -> history)."""
    histories = {"rna:ppi": rna_ppi, "rna:chromosome": rna_chromosome, "wsi:wsi": wsi_history}
    histories.update({f"multimodal:{row}": h for row, h in multimodal_histories.items()})
    fig = report.training_curves(histories)
    log_figure(fig, "training_curves.png")
    return fig


REPORT_TABLES = ("table1", "table2", "enrichment", "gradcam_groups", "cluster_survival", "survival_tests", "mice")
REPORT_FIGURES = ("gradcam", "km", "curves", "tsne_ppi", "tsne_chromosome", "confusion")
REPORT_METRICS = ("validation", "wsi", "rna_ppi")


def build_report(
    options: dict,
    split: dict,
    cohort: dict,
    rna_options: dict,
    wsi_options: dict,
    multimodal_options: dict,
    qc_pngs: dict,
    truth_drivers: pd.DataFrame,
    **items,
) -> str:
    """One self-contained HTML page with every table and figure of the run, under a header saying which run
    made it (``items``: the tables, figures and metrics named in ``REPORT_*``)."""
    cfg = ReportingConfig.from_dict(options)
    tables = {k: items[k] for k in REPORT_TABLES}
    tables["table2"] = report.mark_planted(tables["table2"], truth_drivers)
    header = report.run_header(
        cfg,
        SplitConfig.from_dict(split),
        cohort,
        RNAEncodingConfig.from_dict(rna_options),
        WSIEncodingConfig.from_dict(wsi_options),
        MultimodalConfig.from_dict(multimodal_options),
    )
    return report.build_report(
        tables,
        {k: items[k] for k in REPORT_METRICS},
        {k: items[k] for k in REPORT_FIGURES},
        qc_pngs,
        cfg.report_qc_slides,
        header,
    )

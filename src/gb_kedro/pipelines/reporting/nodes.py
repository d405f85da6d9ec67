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
from gb_kedro.genes import gene_labels
from gb_kedro.reporting import (
    axis_probe,
    enrichment,
    gene_scoring,
    gradcam,
    morphology_link,
    report,
    seeds,
    survival,
    validation,
)
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


def enrich_top_genes(
    occurrence: pd.DataFrame, link: pd.DataFrame, gene_table: pd.DataFrame, options: dict
) -> pd.DataFrame:
    """Hypergeometric enrichment of the top genes of Table 2 (Grad-CAM) and of the morphology-link table."""
    cfg = ReportingConfig.from_dict(options).enrichment
    rankings = {"gradcam": occurrence["gene_id_unversioned"], "morphology_link": link["gene_id_unversioned"]}
    table = pd.concat(
        {name: enrichment.enrich(genes, gene_table, cfg) for name, genes in rankings.items()}, names=["ranking"]
    )
    return table.reset_index(level="ranking").reset_index(drop=True)


def seed_trainer(slot: int):
    """The node of seed retraining ``slot`` (one namespaced pipeline per slot)."""

    def train_seed(
        wsi_encoder,
        rna_encoder,
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        options: dict,
        multimodal_options: dict,
        wsi_options: dict,
        row: dict,
    ):
        """The reporting row retrained with seed ``multimodal.seed + slot``: its held-out Grad-CAM gene counts."""
        return seeds.train_seed(
            wsi_encoder,
            rna_encoder,
            patch_index,
            slide_manifest,
            cohort_features,
            cohort_samples,
            ReportingConfig.from_dict(options),
            MultimodalConfig.from_dict(multimodal_options),
            WSIEncodingConfig.from_dict(wsi_options),
            Table1Row.from_dict(row),
            slot,
        )

    return train_seed


def seed_stability(
    occurrence: pd.DataFrame, model, gene_groups: pd.DataFrame, truth_drivers: pd.DataFrame, options: dict, *counts
):
    """Table 2 summed over seeds (the Table 1 model = seed 0, then the retrainings), per-seed top n, Jaccard."""
    cfg = ReportingConfig.from_dict(options)
    genes = gene_labels(model.meta["genes"], gene_groups)
    all_counts = [seeds.counts_of(occurrence, genes), *[c for c in counts[: cfg.n_seeds - 1] if len(c)]]
    summed, per_seed, metrics = seeds.stability(all_counts, genes, cfg.table_size)
    marks = gene_scoring.gene_roles(truth_drivers)["role"] if not truth_drivers.empty else None
    figure = seeds.stability_figure(summed, metrics, cfg.table_size, marks)
    log_figure(figure, "seed_stability.png")
    log_parent_metrics({"genes/gradcam_seeds/jaccard_mean": metrics["jaccard_mean"]})
    logger.info(
        "Grad-CAM over %d seeds: mean Jaccard of the top %d %.2f",
        len(all_counts),
        cfg.table_size,
        metrics["jaccard_mean"],
    )
    return summed, per_seed, metrics, figure


def morphology_link_table(
    wsi_embeddings: pd.DataFrame,
    morphometry_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    gene_groups: pd.DataFrame,
    options: dict,
):
    """Genes predicted from the images of unseen lineages: the table, its markdown, summary and figure."""
    cfg = ReportingConfig.from_dict(options)
    link = cfg.morphology_link
    table, summary = morphology_link.link_table(
        wsi_embeddings, morphometry_features, cohort_features, cohort_samples, gene_groups, link, cfg.seed
    )
    figure = morphology_link.link_figure(table, summary, link.representations, cfg.table_size)
    log_figure(figure, "morphology_link.png")
    logger.info(
        "Morphology link (top %d by %s): %s",
        cfg.table_size,
        link.rank_by,
        ", ".join(table["symbol"].astype(str).head(cfg.table_size)),
    )
    return table, morphology_link.link_markdown(table, cfg.table_size, link.rank_by), summary, figure


def score_gene_rankings(
    link: pd.DataFrame,
    occurrence: pd.DataFrame,
    summed: pd.DataFrame,
    cohort_features: pd.DataFrame,
    truth_drivers: pd.DataFrame,
    options: dict,
):
    """Embedded cohort only: every gene ranking against the planted drivers and decoys (empty on real data)."""
    cfg = ReportingConfig.from_dict(options)
    if truth_drivers.empty:
        logger.info("reporting: no planted truth (synthetic_truth/drivers.tsv): gene rankings not scored")
        return pd.DataFrame(columns=["ranking", "label"]), pd.DataFrame(columns=["ranking", "axis"])
    rankings = gene_scoring.project_rankings(link, occurrence, summed, cohort_features, cfg)
    table, axes = gene_scoring.score_rankings(rankings, truth_drivers, cfg.table_size, cfg.scoring, cfg.seed)
    log_parent_metrics(gene_scoring.headline_metrics(table))
    return table, axes


def probe_axes(
    ppi_embeddings: pd.DataFrame,
    chromosome_embeddings: pd.DataFrame,
    tcga_features: pd.DataFrame,
    tcga_split: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    truth_lineages: pd.DataFrame,
    options: dict,
) -> pd.DataFrame:
    """Embedded cohort only: morphology-axis levels read from the RNA embeddings (PPI, chromosome, PCA)."""
    if truth_lineages.empty:
        logger.info("reporting: no planted truth (synthetic_truth/lineages.tsv): axis probe skipped")
        return pd.DataFrame(columns=["representation"])
    reps = {
        name: axis_probe.cohort_embedding(emb, cohort_samples)
        for name, emb in (("ppi", ppi_embeddings), ("chromosome", chromosome_embeddings))
    }
    reps["pca"] = axis_probe.pca_embedding(
        tcga_features, tcga_split, cohort_features, cohort_samples, reps["ppi"].shape[1]
    )
    table = axis_probe.axis_probe(reps, truth_lineages, ReportingConfig.from_dict(options).axis_probe)
    log_parent_metrics({f"rna/axis_probe/{r.representation.split()[0]}": r.mean for r in table.itertuples()})
    return table


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


REPORT_TABLES = (
    "table1",
    "table2",
    "enrichment",
    "gradcam_groups",
    "cluster_survival",
    "survival_tests",
    "mice",
    "link_table",
    "scoring",
    "axes",
    "seeds_summed",
    "seeds_top",
    "axis_probe",
)
REPORT_FIGURES = ("gradcam", "km", "curves", "tsne_ppi", "tsne_chromosome", "confusion", "link_figure", "seeds_figure")
REPORT_METRICS = ("validation", "wsi", "rna_ppi", "link_summary", "seeds_metrics")


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
    for name in ("table2", "link_table", "seeds_summed"):
        tables[name] = report.mark_planted(tables[name], truth_drivers)
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

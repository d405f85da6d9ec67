"""Nodes of the ``reporting`` pipeline: parameters into typed configs, then :mod:`gb_kedro.reporting`."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from gb_kedro import profiling
from gb_kedro.config import PatchesConfig, ReportingConfig, SplitConfig
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.genes import gene_labels
from gb_kedro.reporting import (
    axis_probe,
    enrichment,
    gene_scoring,
    gradcam,
    image_axis_probe,
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
    pixels: PatchPixels,
    cohort_features: pd.DataFrame,
    gene_groups: pd.DataFrame,
    options: dict,
    patches: dict,
):
    """Table 2: Grad-CAM of each held-out patch with its predicted RNA sample; occurrence, groups, per patch, figure."""
    out = gradcam.rank_genes(
        model,
        predictions,
        patch_index,
        pixels,
        cohort_features,
        gene_groups,
        ReportingConfig.from_dict(options),
        _patches(pixels, patch_index, patches),
    )
    log_figure(out[-1], "gradcam.png")
    logger.info("Table 2 (Grad-CAM top %d): %s", len(out[1]), ", ".join(out[1]["symbol"]))
    return out


def _patches(pixels: PatchPixels, patch_index: pd.DataFrame, patches: dict) -> PatchesConfig:
    cfg = PatchesConfig.from_dict(patches)
    pixels.require(patch_index, cfg.geometry[0], "reporting")
    return cfg


def count_gradcam_genes(
    model,
    predictions: pd.DataFrame,
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    cohort_features: pd.DataFrame,
    options: dict,
    patches: dict,
):
    """Per model gene, its held-out Grad-CAM top-k occurrence with a retrained model (seed or permutation null;
    empty when that retraining was left out)."""
    return gradcam.gene_counts(
        model,
        predictions,
        patch_index,
        pixels,
        cohort_features,
        ReportingConfig.from_dict(options),
        _patches(pixels, patch_index, patches),
    )


def validate_against_truth(
    occurrence: pd.DataFrame,
    model,
    predictions: pd.DataFrame,
    cohort_features: pd.DataFrame,
    truth_drivers: pd.DataFrame,
    options: dict,
    *null_counts,
) -> dict:
    """Embedded cohort only: Table 2 against variance, random and the permutation null (empty on real data)."""
    cfg = ReportingConfig.from_dict(options)
    trained = [c for c in null_counts if len(c)]
    if truth_drivers.empty:  # real data: no planted truth (the catalog entry is optional)
        logger.info(
            "reporting: no planted truth (synthetic_truth/drivers.tsv): validation skipped%s",
            f" ({len(trained)} permutation-null retraining(s) not scored)" if trained else "",
        )
        return {}
    genes = model.meta["genes"]
    null = [validation.null_precision(c, genes, truth_drivers, cfg.table_size) for c in trained]
    metrics = validation.validate(occurrence, model, cohort_features, truth_drivers, null, len(predictions), cfg)
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


def seed_stability(
    occurrence: pd.DataFrame, model, gene_groups: pd.DataFrame, truth_drivers: pd.DataFrame, options: dict, *counts
):
    """Table 2 summed over seeds (the Table 1 model = seed 0, then the retrainings), per-seed top n, Jaccard."""
    cfg = ReportingConfig.from_dict(options)
    genes = gene_labels(model.meta["genes"], gene_groups)
    all_counts = [seeds.counts_of(occurrence, genes), *[c for c in counts if len(c)]]
    summed, per_seed, metrics = seeds.stability(all_counts, genes, cfg.table_size)
    marks = gene_scoring.gene_roles(truth_drivers)["role"] if not truth_drivers.empty else None
    figure = seeds.stability_figure(summed, metrics, cfg.table_size, marks)
    log_figure(figure, "seed_stability.png")
    log_parent_metrics({"genes/gradcam_seeds/jaccard_mean": metrics["jaccard_mean"]})  # NaN (one seed): not logged
    if len(all_counts) > 1:
        logger.info(
            "Grad-CAM over %d seeds: mean Jaccard of the top %d %.2f",
            len(all_counts),
            cfg.table_size,
            metrics["jaccard_mean"],
        )
    else:
        logger.info("Grad-CAM seed stability: one model only (multimodal.retrainings.seeds = 1), no overlap computed")
    return summed, per_seed, metrics, figure


def morphology_link_table(
    wsi_embeddings: pd.DataFrame,
    morphometry_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    gene_groups: pd.DataFrame,
    options: dict,
    **patch_embeddings: pd.DataFrame,
):
    """Genes predicted from the images of unseen lineages (``patch_embeddings``: the patch encoders of
    ``patch_features.encoders``, scored too): the table, its markdown, summary and figure."""
    cfg = ReportingConfig.from_dict(options)
    link = cfg.morphology_link
    table, summary = morphology_link.link_table(
        wsi_embeddings,
        morphometry_features,
        cohort_features,
        cohort_samples,
        gene_groups,
        link,
        cfg.seed,
        patch_embeddings,
    )
    figure = morphology_link.link_figure(table, summary, list(summary["representations"]), cfg.table_size)
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
    tcga_features: pd.DataFrame,
    tcga_split: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    truth_lineages: pd.DataFrame,
    options: dict,
    **embeddings: pd.DataFrame,
) -> pd.DataFrame:
    """Embedded cohort only: morphology-axis levels read from the RNA embeddings (``embeddings``: grouping ->
    the encoder's embeddings) and from PCA of the input at the same width."""
    if truth_lineages.empty:
        logger.info("reporting: no planted truth (synthetic_truth/lineages.tsv): axis probe skipped")
        return pd.DataFrame(columns=["representation"])
    reps = {name: axis_probe.cohort_embedding(emb, cohort_samples) for name, emb in embeddings.items()}
    width = next(iter(reps.values())).shape[1]
    reps["pca"] = axis_probe.pca_embedding(tcga_features, tcga_split, cohort_features, cohort_samples, width)
    table = axis_probe.axis_probe(reps, truth_lineages, ReportingConfig.from_dict(options).axis_probe)
    log_parent_metrics({f"rna/axis_probe/{r.representation.split()[0]}": r.mean for r in table.itertuples()})
    return table


def probe_image_axes(
    wsi_embeddings: pd.DataFrame,
    multimodal_patch_embeddings: pd.DataFrame,
    morphometry_features: pd.DataFrame,
    colour_features: pd.DataFrame,
    patch_index: pd.DataFrame,
    truth_lineages: pd.DataFrame,
    oracle_features: pd.DataFrame,
    options: dict,
    **patch_embeddings: pd.DataFrame,
) -> tuple[pd.DataFrame, Figure]:
    """Embedded cohort only: each planted morphology axis read from each image representation (WSI encoder,
    multimodal image tower, 40 morphometry features, colour statistics; ``patch_embeddings``: the patch encoders
    of ``patch_features.encoders``, name -> embeddings) and from the generator's own per-patch cells (the ceiling)
    by a probe fit on training patches, scored on unseen mice and unseen lineages."""
    if truth_lineages.empty:
        logger.info("reporting: no planted truth (synthetic_truth/lineages.tsv): image axis probe skipped")
        empty = Figure(figsize=(4, 1.2))
        empty.text(0.5, 0.5, "no planted truth: image axis probe skipped", ha="center", fontsize=8)
        return pd.DataFrame(
            columns=["representation", "held_out", "axis", "accuracy", "ci_low", "ci_high", "chance"]
        ), empty
    config = ReportingConfig.from_dict(options)
    cfg = config.image_axis_probe
    index = patch_index.reset_index(drop=True)
    reps = image_axis_probe.representations(
        index, wsi_embeddings, multimodal_patch_embeddings, morphometry_features, colour_features, patch_embeddings
    )
    reps = image_axis_probe.with_oracle(reps, oracle_features, index)
    table = image_axis_probe.image_axis_probe(reps, index, truth_lineages, cfg, config.seed)
    figure = image_axis_probe.figure(table)
    log_parent_metrics(
        {f"image_axis_probe/{r.representation}/{r.held_out}/{r.axis}": r.accuracy for r in table.itertuples()}
    )
    log_figure(figure, "image_axis_probe.png")
    return table, figure


def aggressiveness(
    patch_embeddings: pd.DataFrame,
    rna_embeddings: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    options: dict,
):
    """Lineage clusters vs mouse survival (Kaplan-Meier, log-rank) and patient OS/PFS."""
    out = survival.aggressiveness(
        patch_embeddings, rna_embeddings, slide_manifest, cohort_samples, ReportingConfig.from_dict(options)
    )
    log_figure(out[-1], "survival_km.png")
    return out


def training_curves(**histories: pd.DataFrame) -> Figure:
    """Per-epoch losses of every trained model (keyword arguments ``<stage>:<variant>`` -> history: ``rna:ppi``,
    ``wsi:wsi``, ``multimodal:<row>``)."""
    fig = report.training_curves(histories)
    log_figure(fig, "training_curves.png")
    return fig


REPORT_TABLES = (
    "table1",
    "table1_paired",
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
    "image_axes",
)
REPORT_FIGURES = ("gradcam", "km", "curves", "confusion", "link_figure", "seeds_figure", "image_axes_figure")
REPORT_METRICS = ("validation", "wsi", "rna_metrics", "link_summary", "seeds_metrics")


def build_report(
    options: dict,
    split: dict,
    patches: dict,
    marker: dict,
    rna_encoder,
    wsi_encoder,
    model,
    qc_pngs: dict,
    truth_drivers: pd.DataFrame,
    **items,
) -> str:
    """One self-contained HTML page with every table and figure of the run, under a header saying which run
    made it, from what the stages wrote (the models' records, the generator's marker; ``items``: the tables,
    figures and metrics named in ``REPORT_*``, ``tsne_<grouping>``: Fig. 5 of each RNA encoder, and
    ``patch_metrics_<encoder>``: the image-only figures of each patch encoder of your own)."""
    cfg = ReportingConfig.from_dict(options)
    tables = {k: items[k] for k in REPORT_TABLES}
    for name in ("table2", "link_table", "seeds_summed"):
        tables[name] = report.mark_planted(tables[name], truth_drivers)
    header = report.run_header(
        cfg, SplitConfig.from_dict(split), PatchesConfig.from_dict(patches), marker, rna_encoder, wsi_encoder, model
    )
    return report.build_report(
        tables,
        {k: items[k] for k in REPORT_METRICS},
        {k: items[k] for k in REPORT_FIGURES},
        {k.removeprefix("tsne_"): v for k, v in items.items() if k.startswith("tsne_")},
        qc_pngs,
        cfg.report_qc_slides,
        header,
        model.meta.get("label", model.meta.get("row", "")),
        len(items["gradcam_patches"]),
        profiling.current().table() if profiling.current() is not None else None,  # the run so far (not an input)
        {k.removeprefix("patch_metrics_"): v for k, v in items.items() if k.startswith("patch_metrics_")},
    )

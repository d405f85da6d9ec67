"""Nodes of the ``data_engineering`` pipeline (RNA-seq and PPI part). Thin wrappers: the logic lives in
:mod:`gb_kedro.genes`, :mod:`gb_kedro.expression` and :mod:`gb_kedro.graph`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import pandas as pd

from pathlib import Path

from gb_kedro import expression, graph
from gb_kedro.errors import InputDataError
from gb_kedro.genes import prepare_annotation
from gb_kedro.slides.manifest import resolve_slide_manifest
from gb_kedro.slides.qc import qc_figure
from gb_kedro.slides.split import assign_split
from gb_kedro.slides.tiling import TilingOptions, score_slides


logger = logging.getLogger(__name__)


def prepare_gene_annotation(annotation: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GENCODE table -> one row per stripped Ensembl ID, and the ``_PAR_Y`` rows dropped."""
    return prepare_annotation(annotation)


def assemble_tcga(partitions: Mapping[str, Callable[[], pd.DataFrame]], sample_sheet: pd.DataFrame, options: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Folder of GDC STAR files + GDC sample sheet -> samples x genes matrix and the sample table."""
    return expression.assemble_star_counts(
        partitions, sample_sheet, value_column=options["value_column"], keep_gene_types=options.get("keep_gene_types")
    )


def read_cohort(matrix: pd.DataFrame, sample_sheet: pd.DataFrame, options: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cohort expression matrix + sample sheet -> validated samples x genes matrix and sample table."""
    parsed = expression.parse_expression_matrix(
        matrix,
        orientation=options.get("orientation", "auto"),
        gene_column=options.get("gene_column"),
        annotation_columns=options.get("annotation_columns"),
        value_scale=options.get("value_scale", "linear"),
    )
    samples = expression.validate_cohort_samples(parsed, sample_sheet)
    return parsed, samples


def harmonise(
    tcga: pd.DataFrame, cohort: pd.DataFrame, genes: pd.DataFrame, annotation_dropped: pd.DataFrame, options: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stripped Ensembl IDs, genes of the wanted types common to TCGA, cohort and annotation."""
    tcga_h, cohort_h, table, dropped = expression.harmonise_genes(tcga, cohort, genes, options["gene_types"], annotation_dropped)
    logger.info("Harmonised: %d genes common to TCGA (%d samples) and the cohort (%d samples)", table.shape[0], tcga_h.shape[0], cohort_h.shape[0])
    return tcga_h, cohort_h, table, dropped


def normalise(
    tcga: pd.DataFrame,
    cohort: pd.DataFrame,
    genes: pd.DataFrame,
    dropped: pd.DataFrame,
    tcga_options: dict,
    cohort_options: dict,
    variance_options: dict,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """ln(1+x), drop low-variance genes, z-score with TCGA statistics (applied to the cohort too).

    Returns:
        ``tcga_features``, ``cohort_features`` (samples x genes, float32, fixed gene order),
        ``gene_table`` (``position``, IDs, symbol, chromosome, TCGA mean/std, variances), the full
        ``dropped_genes`` table, and a summary.
    """
    tcga_log = expression.to_log1p(tcga, tcga_options.get("value_scale", "linear"))
    cohort_log = expression.to_log1p(cohort, cohort_options.get("value_scale", "linear"))
    kept, variances = expression.variance_filter(
        {"tcga": tcga_log, "cohort": cohort_log}, quantile=variance_options["quantile"], min_variance=variance_options.get("min_variance", 0.0)
    )
    low = variances.index[~variances["kept"]]
    dropped = pd.concat(
        [dropped, pd.DataFrame({"gene": list(low), "stage": "normalise", "reason": f"low variance (below the {variance_options['quantile']:.0%} quantile in TCGA and in the cohort)"})],
        ignore_index=True,
    )
    stats = expression.fit_zscore(tcga_log[kept])
    tcga_z = expression.apply_zscore(tcga_log[kept], stats)
    cohort_z = expression.apply_zscore(cohort_log[kept], stats)
    table = genes.set_index("gene_id").loc[kept].reset_index()
    table.insert(0, "position", range(len(table)))
    table["tcga_mean"] = stats["mean"].to_numpy()
    table["tcga_std"] = stats["std"].to_numpy()
    table["var_tcga"] = variances.loc[kept, "tcga"].to_numpy()
    table["var_cohort"] = variances.loc[kept, "cohort"].to_numpy()
    summary = {
        "genes_harmonised": int(genes.shape[0]),
        "genes_kept": int(len(kept)),
        "genes_dropped_low_variance": int(len(low)),
        "tcga_samples": int(tcga_z.shape[0]),
        "cohort_samples": int(cohort_z.shape[0]),
        "dropped_by_reason": dropped.groupby(["stage", "reason"]).size().rename("n").reset_index().to_dict(orient="records"),
    }
    return tcga_z, cohort_z, table, dropped, summary


def read_ppi(ppi: pd.DataFrame, genes: pd.DataFrame, options: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """PrimeKG ``kg.csv`` or an edge list -> directed edges between annotated genes (+ dropped nodes)."""
    edges, dropped, summary = graph.parse_ppi(
        ppi, genes, fmt=options.get("format", "auto"), directed=options.get("directed"), complexes=options.get("complexes", "expand")
    )
    logger.info("PPI: %d edges over %d genes kept; %d nodes dropped", summary["edges_kept"], summary["genes_in_graph"], summary["nodes_dropped"])
    return edges, dropped, summary


def ppi_gene_groups(edges: pd.DataFrame, gene_table: pd.DataFrame, options: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Directed-Louvain gene groups (paper eq. 1), merged to ``n_groups``."""
    groups, sizes, metrics = graph.group_genes(
        edges, gene_table, n_groups=options["n_groups"], resolution=options.get("resolution", 1.0), seed=options.get("seed", 0)
    )
    logger.info("PPI grouping: %d communities (Qd %.3f) merged into %d groups (Qd %.3f)", metrics["n_communities"], metrics["qd_raw"], metrics["n_groups"], metrics["qd_merged"])
    return groups, sizes, metrics


def chromosome_gene_groups(gene_table: pd.DataFrame, options: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The ablation: the same number of groups, by chromosome."""
    groups, sizes = graph.chromosome_groups(gene_table, n_groups=options["n_groups"])
    return groups, sizes, {"n_groups": int(sizes.shape[0]), "group_sizes": sizes["n_genes"].tolist()}


# ---------------------------------------------------------------------------------------------------
# Whole-slide images
# ---------------------------------------------------------------------------------------------------
def tile_slides(manifest: pd.DataFrame, tiling: dict, run: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the patches of every slide of the manifest (streaming, parallel over slides).

    A manifest row whose file is missing, or a slide OpenSlide cannot read, stops the run with a message
    naming the slide; with ``on_slide_error: skip`` it is recorded in the summary and the run goes on.

    Returns ``(patch_scores, slide_summary)``.
    """
    slides = resolve_slide_manifest(manifest)
    patches, summary = score_slides(slides[["slide_id", "path"]], TilingOptions.from_dict(tiling), n_workers=int(run.get("n_workers", 1)), on_error=run.get("on_slide_error", "raise"))
    summary = slides[["slide_id", "mouse_id", "lineage_id", "patient_id"]].merge(summary, on="slide_id", how="left")
    n_failed = int((summary["status"] == "failed").sum())
    logger.info("Tiling: %d slides, %d tumour patches, %d slide(s) without tumour patch, %d failed",
                len(summary), int(summary["tumour_patches"].sum()), int((summary["status"] == "no_tumour").sum()), n_failed)
    return patches, summary


def build_patch_index(patch_scores: pd.DataFrame, manifest: pd.DataFrame, split: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tumour patches with their mouse, lineage and patient, and the evaluation split (``params:split``).

    Returns ``(patch_index, lineage_split)``.
    """
    slides = resolve_slide_manifest(manifest)
    tumour = patch_scores[patch_scores["tumour"]].drop(columns=["tumour"])
    index = tumour.merge(slides[["slide_id", "mouse_id", "lineage_id", "patient_id"]], on="slide_id", how="left")
    index = index[["slide_id", "x", "y", "level", "size", "size_level0", "brown_ratio", "lineage_id", "patient_id", "mouse_id"]]
    index, lineage_split = assign_split(index.reset_index(drop=True), split)
    missing = sorted(set(slides["lineage_id"]) - set(index["lineage_id"]))
    if missing:
        logger.warning("No tumour patch for lineage(s) %s", missing)
    logger.info("Patch index: %d tumour patches, split '%s': %d test", len(index), split.get("mode"), int((index["split"] == "test").sum()))
    return index, lineage_split


def slide_qc_thumbnails(manifest: pd.DataFrame, patch_scores: pd.DataFrame, tiling: dict, qc: dict) -> dict:
    """One QC figure per slide (``qc.max_slides`` first slides; all when null): kept patches outlined."""
    slides = resolve_slide_manifest(manifest)
    limit = qc.get("max_slides")
    threshold = TilingOptions.from_dict(tiling).threshold
    figures = {}
    for row in slides.head(limit if limit else len(slides)).itertuples(index=False):
        if not Path(row.path).exists():
            continue
        try:
            figures[f"{row.slide_id}.png"] = qc_figure(row.path, row.slide_id, patch_scores[patch_scores["slide_id"] == row.slide_id], threshold, int(qc.get("thumbnail_px", 768)))
        except InputDataError as exc:
            logger.warning("QC thumbnail skipped: %s", exc)
    return figures

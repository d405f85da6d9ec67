"""Nodes of the ``data_engineering`` pipeline (RNA-seq and PPI part). Thin wrappers: the logic lives in
:mod:`gb_kedro.genes`, :mod:`gb_kedro.expression` and :mod:`gb_kedro.graph`."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from gb_kedro import expression, graph
from gb_kedro.config import (
    CohortReadConfig,
    GroupingConfig,
    HarmoniseConfig,
    MinimumsConfig,
    PatchesConfig,
    PPIConfig,
    QCConfig,
    SlideRunConfig,
    SplitConfig,
    TcgaConfig,
    TilingOptions,
    VarianceConfig,
)
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.datasets.patch_store import PatchStore
from gb_kedro.datasets.tcga import TcgaDownload
from gb_kedro.errors import InputDataError, source_of
from gb_kedro.genes import prepare_annotation, prepare_history
from gb_kedro.provenance import stamp
from gb_kedro.slides.manifest import resolve_slide_manifest
from gb_kedro.slides.patches import decode_patches as decode
from gb_kedro.slides.qc import qc_figure
from gb_kedro.slides.split import assign_split, require_training_patches
from gb_kedro.slides.tiling import score_slides

logger = logging.getLogger(__name__)


def prepare_gene_annotation(
    annotation: pd.DataFrame, hgnc: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Gene table -> one row per stripped Ensembl ID, the symbol history (HGNC table; empty when none is
    given) and the ``_PAR_Y`` rows dropped."""
    genes, dropped = prepare_annotation(annotation)
    return genes, prepare_history(hgnc, genes), dropped


def assemble_tcga(
    download: TcgaDownload,
    sample_sheet: pd.DataFrame,
    genes: pd.DataFrame,
    history: pd.DataFrame,
    options: dict,
    minimums: dict,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A TCGA download (GDC STAR folder, GDC HTSeq folder or matrix) -> samples x genes matrix, the kept
    samples and those left out by sample type."""
    cfg = TcgaConfig.from_dict(options)
    matrix, samples, dropped = expression.read_tcga(
        download,
        sample_sheet,
        fmt=cfg.format,
        value_column=cfg.value_column,
        htseq_values=cfg.htseq_values,
        keep_gene_types=cfg.keep_gene_types,
        project=cfg.project,
        sample_types=cfg.sample_types,
        matrix_options=cfg.matrix_options,
        genes=genes,
        history=history,
    )
    expression.require_minimum(
        len(samples), MinimumsConfig.from_dict(minimums).tcga_samples, "TCGA samples", matrix, "tcga_samples"
    )
    logger.info("TCGA: %d samples x %d genes read; %d left out by sample type", *matrix.shape, len(dropped))
    return matrix, samples, dropped


def read_cohort(
    matrix: pd.DataFrame,
    sample_sheet: pd.DataFrame,
    genes: pd.DataFrame,
    history: pd.DataFrame,
    options: dict,
    minimums: dict,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cohort expression matrix + sample sheet -> validated samples x genes matrix and sample table."""
    cfg = CohortReadConfig.from_dict(options)
    parsed = expression.parse_expression_matrix(matrix, genes=genes, history=history, **cfg.matrix_options)
    samples = expression.validate_cohort_samples(parsed, sample_sheet)
    least = MinimumsConfig.from_dict(minimums)
    expression.require_minimum(len(samples), least.cohort_samples, "cohort RNA samples", parsed, "cohort_samples")
    n_lineages = samples["lineage_id"].nunique()
    expression.require_minimum(n_lineages, least.cohort_lineages, "lineages", sample_sheet, "cohort_lineages")
    return parsed, samples


def harmonise(
    tcga: pd.DataFrame,
    cohort: pd.DataFrame,
    genes: pd.DataFrame,
    history: pd.DataFrame,
    annotation_dropped: pd.DataFrame,
    options: dict,
    minimums: dict,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stripped Ensembl IDs, genes of the wanted types common to TCGA, cohort and annotation."""
    tcga_h, cohort_h, table, dropped = expression.harmonise_genes(
        tcga, cohort, genes, HarmoniseConfig.from_dict(options).gene_types, annotation_dropped, history
    )
    where = f"{source_of(tcga, 'TCGA')} + {source_of(cohort, 'cohort')}"
    expression.require_minimum(
        len(table), MinimumsConfig.from_dict(minimums).genes, "genes after harmonisation", where, "genes"
    )
    logger.info(
        "Harmonised: %d genes common to TCGA (%d samples) and the cohort (%d samples)",
        table.shape[0],
        tcga_h.shape[0],
        cohort_h.shape[0],
    )
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
    """ln(1+x), drop low-variance genes, z-score with TCGA statistics (applied to the cohort too): the two
    feature matrices, the model's gene table, every dropped gene and a summary."""
    variance = VarianceConfig.from_dict(variance_options)
    return expression.normalise_features(
        tcga,
        cohort,
        genes,
        dropped,
        TcgaConfig.from_dict(tcga_options).value_scale,
        CohortReadConfig.from_dict(cohort_options).value_scale,
        variance.quantile,
        variance.min_variance,
    )


def read_ppi(
    ppi: pd.DataFrame, genes: pd.DataFrame, history: pd.DataFrame, options: dict
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """PrimeKG ``kg.csv`` or an edge list -> directed edges between annotated genes (+ dropped nodes)."""
    cfg = PPIConfig.from_dict(options)
    edges, dropped, summary = graph.parse_ppi(
        ppi, genes, fmt=cfg.format, directed=cfg.directed, complexes=cfg.complexes, history=history
    )
    logger.info(
        "PPI: %d edges over %d genes kept; %d nodes dropped",
        summary["edges_kept"],
        summary["genes_in_graph"],
        summary["nodes_dropped"],
    )
    return edges, dropped, summary


def ppi_gene_groups(
    edges: pd.DataFrame, gene_table: pd.DataFrame, tcga_features: pd.DataFrame, options: dict
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Directed-Louvain gene groups (paper eq. 1), merged to ``n_groups``; genes without an edge placed as asked."""
    cfg = GroupingConfig.from_dict(options)
    groups, sizes, metrics = graph.group_genes(
        edges, gene_table, cfg.n_groups, cfg.resolution, cfg.seed, cfg.unconnected, tcga_features
    )
    logger.info(
        "PPI grouping: %d communities (Qd %.3f) merged into %d groups (Qd %.3f); %d of %d genes without a PPI edge "
        "(%s), left-over group %d genes; group sizes %s",
        metrics["n_communities"],
        metrics["qd_raw"],
        metrics["n_groups"],
        metrics["qd_merged"],
        metrics["genes_without_ppi_edge"],
        metrics["genes"],
        "placed by co-expression on TCGA" if cfg.unconnected == "coexpression" else "in the left-over group",
        metrics["residual_group_genes"],
        sizes["n_genes"].tolist(),
    )
    if metrics["residual_group_share"] > cfg.max_residual_share:
        logger.warning(
            "PPI grouping: the left-over group holds %d of %d genes (%.0f %%; %d without any PPI edge): the RNA "
            "encoder sees it as one huge token. Set data_engineering.gene_grouping.unconnected: coexpression to "
            "place unconnected genes by co-expression on TCGA, or use a denser network",
            metrics["residual_group_genes"],
            metrics["genes"],
            100 * metrics["residual_group_share"],
            metrics["genes_without_ppi_edge"],
        )
    return groups, sizes, metrics


def chromosome_gene_groups(gene_table: pd.DataFrame, options: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The ablation: the same number of groups, by chromosome."""
    groups, sizes = graph.chromosome_groups(gene_table, n_groups=GroupingConfig.from_dict(options).n_groups)
    return groups, sizes, {"n_groups": int(sizes.shape[0]), "group_sizes": sizes["n_genes"].tolist()}


# ---------------------------------------------------------------------------------------------------
# Whole-slide images
# ---------------------------------------------------------------------------------------------------
def tile_slides(
    manifest: pd.DataFrame, tiling: dict, run: dict, stores: PatchStore
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the patches of every slide of the manifest: one unit of work per slide on the executor of
    ``data_engineering.slides`` (local processes or Dask), each writing its HDF5 store; slides whose store is
    complete for the same parameters are skipped.

    A manifest row whose file is missing, or a slide that cannot be read, stops the run with a message naming
    the slide; with ``on_slide_error: skip`` it is recorded in the summary and the run goes on.

    Returns ``(patch_scores, slide_summary)``.
    """
    slides = resolve_slide_manifest(manifest)
    cfg = SlideRunConfig.from_dict(run)
    patches, summary = score_slides(
        slides[["slide_id", "path"]], TilingOptions.from_dict(tiling), stores, on_error=cfg.on_slide_error, **cfg.fanout
    )
    summary = slides[["slide_id", "mouse_id", "lineage_id", "patient_id"]].merge(summary, on="slide_id", how="left")
    n_failed = int((summary["status"] == "failed").sum())
    logger.info(
        "Tiling: %d slides, %d tumour patches, %d slide(s) without tumour patch, %d failed",
        len(summary),
        int(summary["tumour_patches"].sum()),
        int((summary["status"] == "no_tumour").sum()),
        n_failed,
    )
    return patches, summary


def build_patch_index(
    patch_scores: pd.DataFrame, manifest: pd.DataFrame, split: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tumour patches with their mouse, lineage and patient, and the evaluation split (``params:split``).

    Returns ``(patch_index, lineage_split)``.
    """
    slides = resolve_slide_manifest(manifest)
    tumour = patch_scores[patch_scores["tumour"]].drop(columns=["tumour"])
    index = tumour.merge(slides[["slide_id", "mouse_id", "lineage_id", "patient_id"]], on="slide_id", how="left")
    index = index[
        [
            "slide_id",
            "x",
            "y",
            "level",
            "size",
            "size_level0",
            "read_size",
            "brown_ratio",
            "lineage_id",
            "patient_id",
            "mouse_id",
        ]
    ]
    cfg = SplitConfig.from_dict(split)
    index, lineage_split = assign_split(index.reset_index(drop=True), cfg)
    stamp(index, split=cfg.to_dict())
    stamp(lineage_split, split=cfg.to_dict())
    lineages, source = slides["lineage_id"].unique(), source_of(manifest, "slide manifest")
    require_training_patches(index, lineage_split, lineages, source, patch_scores["brown_ratio"].to_numpy())
    held = index.loc[index["split"] == "test"].groupby("held_out")
    logger.info(
        "Patch index: %d tumour patches, split '%s': %d training; held out: %s",
        len(index),
        cfg.mode,
        int((index["split"] == "train").sum()),
        ", ".join(f"{name} {len(g)} patches / {g['slide_id'].nunique()} slides" for name, g in held) or "none",
    )
    return index, lineage_split


def decode_patches(
    patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, stores: PatchStore, patches: dict
) -> PatchPixels:
    """Every tumour patch decoded once (``params:patches``: size, decoding workers), for every stage that feeds
    patches to a model; slide by slide, resumable through per-slide stores beside the tiling stores."""
    pixels = decode(patch_index, resolve_slide_manifest(slide_manifest), PatchesConfig.from_dict(patches), stores.root)
    logger.info("Decoded %d tumour patches at %d px", len(pixels), pixels.px)
    return pixels


def slide_qc_thumbnails(
    manifest: pd.DataFrame, patch_scores: pd.DataFrame, slide_summary: pd.DataFrame, qc: dict
) -> dict:
    """One QC figure per slide (``qc.max_slides`` first slides; all when null): kept patches outlined (at the
    threshold the tiling used: ``slide_summary``'s, the cohort's Otsu threshold with ``threshold: auto``)."""
    slides = resolve_slide_manifest(manifest)
    cfg = QCConfig.from_dict(qc)
    threshold = slide_summary.set_index("slide_id")["threshold"]
    figures = {}
    for row in slides.head(cfg.max_slides if cfg.max_slides else len(slides)).itertuples(index=False):
        if not Path(row.path).exists():
            continue
        try:
            scores = patch_scores[patch_scores["slide_id"] == row.slide_id]
            figures[f"{row.slide_id}.png"] = qc_figure(
                row.path, row.slide_id, scores, float(threshold[row.slide_id]), cfg.thumbnail_px, cfg.weak_brown_min
            )
        except InputDataError as exc:
            logger.warning("QC thumbnail skipped: %s", exc)
    return figures

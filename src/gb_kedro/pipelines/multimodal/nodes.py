"""Nodes of the ``multimodal`` pipeline: parameters into typed configs, then :mod:`gb_kedro.multimodal`."""

from __future__ import annotations

import pandas as pd

from gb_kedro import evaluation, provenance
from gb_kedro import multimodal as mm
from gb_kedro.config import ColourRow, MorphometryRow, MultimodalConfig, SplitConfig, Table1Row, WSIEncodingConfig
from gb_kedro.tracking import log_parent_metrics


def train_multimodal(
    wsi_encoder,
    rna_encoder,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    split: dict,
    options: dict,
    wsi_options: dict,
    row: dict,
):
    """The model of one Table 1 row trained on the training patches paired with their lineage's RNA; its history."""
    split_cfg = SplitConfig.from_dict(split).to_dict()
    provenance.require_split(patch_index, split_cfg, "patch_index", "multimodal")
    provenance.require_model(
        wsi_encoder.meta, split_cfg, patch_index, "wsi_encoder", "multimodal", "run wsi_encoding first"
    )
    model, history = mm.train_row(
        wsi_encoder,
        rna_encoder,
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        MultimodalConfig.from_dict(options),
        WSIEncodingConfig.from_dict(wsi_options),
        Table1Row.from_dict(row),
    )
    return model.describe(split=split_cfg, patch_index=provenance.index_fingerprint(patch_index)), history


def evaluate_multimodal(
    model,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    split: dict,
    options: dict,
    wsi_options: dict,
):
    """Eq. 9 on the held-out patches: the row's Table 1 metrics, confusion plot and per-patch predictions."""
    split_cfg = SplitConfig.from_dict(split)
    provenance.require_model(
        model.meta,
        split_cfg.to_dict(),
        patch_index,
        f"{model.meta.get('row')}.multimodal_model",
        "multimodal",
        "run the multimodal pipeline's training (it retrains for this split)",
    )
    return mm.evaluate_row(
        model,
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        split_cfg,
        MultimodalConfig.from_dict(options),
        WSIEncodingConfig.from_dict(wsi_options),
    )


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
    """The non-deep Table 1 row: colour statistics -> RNA by ridge, then the same retrieval."""
    split_cfg = SplitConfig.from_dict(split)
    provenance.require_split(patch_index, split_cfg.to_dict(), "patch_index", "multimodal")
    return mm.colour_row(
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        split_cfg,
        MultimodalConfig.from_dict(options),
        WSIEncodingConfig.from_dict(wsi_options),
        ColourRow.from_dict(row),
    )


def morphometry_baseline(
    morphometry_features: pd.DataFrame,
    patch_index: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    split: dict,
    options: dict,
    row: dict,
) -> dict:
    """The pixel-morphometry Table 1 row: nuclear features -> RNA by ridge, then the same retrieval."""
    split_cfg = SplitConfig.from_dict(split)
    provenance.require_split(patch_index, split_cfg.to_dict(), "patch_index", "multimodal")
    return mm.morphometry_row(
        morphometry_features,
        patch_index,
        cohort_features,
        cohort_samples,
        split_cfg,
        MultimodalConfig.from_dict(options),
        MorphometryRow.from_dict(row),
    )


def assemble_table1(*rows: dict) -> tuple[pd.DataFrame, str]:
    """Table 1 (configurations x held-out sets; patient and lineage accuracy with 95 % intervals) as a table and markdown."""
    table = evaluation.table1(list(rows))
    log_parent_metrics(
        {
            f"table1/{r['row']}/{name}/{m}": sets[m]
            for r in rows
            for name, sets in r["sets"].items()
            for m in ("lineage_accuracy", "patient_accuracy")
        }
    )
    return table, evaluation.table1_markdown(table)

"""Nodes of the ``multimodal`` pipeline: parameters into typed configs, then :mod:`gb_kedro.multimodal`."""

from __future__ import annotations

import pandas as pd

from gb_kedro import evaluation
from gb_kedro import multimodal as mm
from gb_kedro.config import ColourRow, MultimodalConfig, SplitConfig, Table1Row, WSIEncodingConfig


def train_multimodal(
    wsi_encoder,
    rna_encoder,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    options: dict,
    wsi_options: dict,
    row: dict,
):
    """The model of one Table 1 row trained on the training patches paired with their lineage's RNA; its history."""
    return mm.train_row(
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
    return mm.evaluate_row(
        model,
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        SplitConfig.from_dict(split),
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
    return mm.colour_row(
        patch_index,
        slide_manifest,
        cohort_features,
        cohort_samples,
        SplitConfig.from_dict(split),
        MultimodalConfig.from_dict(options),
        WSIEncodingConfig.from_dict(wsi_options),
        ColourRow.from_dict(row),
    )


def assemble_table1(*rows: dict) -> tuple[pd.DataFrame, str]:
    """Table 1 (rows = configurations; patient and lineage accuracy with 95 % intervals) as a table and markdown."""
    table = evaluation.table1(list(rows))
    return table, evaluation.table1_markdown(table)

"""Nodes of the ``wsi_encoding`` pipeline: parameters into typed configs, then :mod:`gb_kedro.wsi_encoding`."""

from __future__ import annotations

import pandas as pd

from gb_kedro import provenance
from gb_kedro import wsi_encoding as wsi
from gb_kedro.config import SplitConfig, WSIEncodingConfig


def train_wsi_encoder(patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, split: dict, options: dict):
    """The ViT trained on the training patches of the evaluation split; its per-epoch history."""
    split_cfg = SplitConfig.from_dict(split)
    provenance.require_split(patch_index, split_cfg.to_dict(), "patch_index", "wsi_encoding")
    model, history = wsi.train_encoder(patch_index, slide_manifest, WSIEncodingConfig.from_dict(options))
    return model.describe(split=split_cfg.to_dict(), patch_index=provenance.index_fingerprint(patch_index)), history


def embed_wsi_patches(model, patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, options: dict) -> pd.DataFrame:
    """CLS embeddings of every tumour patch, train and held out, with the index columns."""
    return wsi.embed_patches(model, patch_index, slide_manifest, WSIEncodingConfig.from_dict(options))


def evaluate_wsi_embeddings(
    embeddings: pd.DataFrame, patch_index: pd.DataFrame, slide_manifest: pd.DataFrame, model, split: dict, options: dict
):
    """Image-only 1-NN lineage retrieval beside the colour-histogram baseline; a confusion plot."""
    return wsi.evaluate_embeddings(
        embeddings,
        patch_index,
        slide_manifest,
        model,
        SplitConfig.from_dict(split),
        WSIEncodingConfig.from_dict(options),
    )

"""Nodes of the ``wsi_encoding`` pipeline: parameters into typed configs, then :mod:`gb_kedro.wsi_encoding`."""

from __future__ import annotations

import pandas as pd

from gb_kedro import patch_features, provenance
from gb_kedro import wsi_encoding as wsi
from gb_kedro.config import (
    LineageClassifierConfig,
    MorphometryConfig,
    PatchesConfig,
    PatchFeaturesConfig,
    SplitConfig,
    WSIEncodingConfig,
)
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.datasets.patch_store import PatchStore


def _pixels(pixels: PatchPixels, patch_index: pd.DataFrame, patches: dict) -> PatchesConfig:
    cfg = PatchesConfig.from_dict(patches)
    pixels.require(patch_index, cfg.geometry[0], "wsi_encoding")
    return cfg


def measure_morphometry(
    patch_index: pd.DataFrame, pixels: PatchPixels, patches: dict, options: dict, morphometry: dict
):
    """Pixel morphometry (nuclear size, shape, texture, spacing, density; tumour extent) of every tumour patch."""
    _pixels(pixels, patch_index, patches)
    return wsi.measure_morphometry(
        patch_index, pixels, WSIEncodingConfig.from_dict(options), MorphometryConfig.from_dict(morphometry)
    )


def measure_colour(patch_index: pd.DataFrame, pixels: PatchPixels, patches: dict, options: dict) -> pd.DataFrame:
    """Colour statistics (RGB histograms, channel means and stds) of every tumour patch, once per run."""
    _pixels(pixels, patch_index, patches)
    return wsi.measure_colour(patch_index, pixels, WSIEncodingConfig.from_dict(options))


def train_wsi_encoder(
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    morphometry_features: pd.DataFrame,
    split: dict,
    patches: dict,
    options: dict,
):
    """The ViT trained on the training patches of the evaluation split; its per-epoch history."""
    split_cfg = SplitConfig.from_dict(split)
    provenance.require_split(patch_index, split_cfg.to_dict(), "patch_index", "wsi_encoding")
    model, history = wsi.train_encoder(
        patch_index,
        pixels,
        WSIEncodingConfig.from_dict(options),
        _pixels(pixels, patch_index, patches),
        morphometry_features,
    )
    return model.describe(split=split_cfg.to_dict(), patch_index=provenance.index_fingerprint(patch_index)), history


def embed_wsi_patches(model, patch_index: pd.DataFrame, pixels: PatchPixels, patches: dict, options: dict):
    """CLS embeddings of every tumour patch, train and held out, with the index columns."""
    cfg = _pixels(pixels, patch_index, patches)
    return wsi.embed_patches(model, patch_index, pixels, WSIEncodingConfig.from_dict(options), cfg)


def evaluate_wsi_embeddings(
    embeddings: pd.DataFrame,
    colour_features: pd.DataFrame,
    model,
    morphometry_features: pd.DataFrame,
    split: dict,
    options: dict,
    classifier: dict,
):
    """Image-only lineage retrieval per held-out set (1-NN; a lineage classifier on the embedding and on the richer
    morphometry) beside the colour and morphometry baselines; a confusion plot."""
    return wsi.evaluate_embeddings(
        embeddings,
        colour_features,
        SplitConfig.from_dict(split),
        WSIEncodingConfig.from_dict(options),
        morphometry_features,
        LineageClassifierConfig.from_dict(classifier),
        mlflow_run_id=model.meta.get("mlflow_run_id"),
    )


def patch_encoder(name: str):
    """The two nodes of patch encoder ``name`` (``patch_features.encoders``): its embeddings of every tumour patch
    (from its feature folder or exported model) and their evaluation beside the strong baseline."""

    def embed_patch_features(
        patch_index: pd.DataFrame, pixels: PatchPixels, store: PatchStore, patches: dict, options: dict
    ) -> tuple[pd.DataFrame, dict]:
        settings = PatchFeaturesConfig.from_dict(options).encoder(name)
        if settings.source == "exported":
            _pixels(pixels, patch_index, patches)
        return patch_features.patch_embeddings(patch_index, pixels, store, settings, name)

    def evaluate_patch_features(
        embeddings: pd.DataFrame,
        match: dict,
        colour_features: pd.DataFrame,
        morphometry_features: pd.DataFrame,
        split: dict,
        options: dict,
        classifier: dict,
    ):
        return wsi.evaluate_patch_features(
            embeddings,
            colour_features,
            SplitConfig.from_dict(split),
            WSIEncodingConfig.from_dict(options),
            morphometry_features,
            LineageClassifierConfig.from_dict(classifier),
            name,
            match,
        )

    embed_patch_features.__doc__ = f"Encoder {name}'s embeddings of every tumour patch and how many were matched."
    evaluate_patch_features.__doc__ = f"Encoder {name}: 1-NN and lineage classifier beside the strong baseline."
    return embed_patch_features, evaluate_patch_features

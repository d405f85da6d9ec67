"""Nodes of the ``rna_encoding`` pipeline: parameters into typed configs, then :mod:`gb_kedro.rna_encoding`."""

from __future__ import annotations

import pandas as pd

from gb_kedro import provenance
from gb_kedro import rna_encoding as rna
from gb_kedro.config import RNAEncodingConfig, RNAVariant, SplitConfig


def split_tcga_samples(tcga_samples: pd.DataFrame, options: dict) -> pd.DataFrame:
    """TCGA samples held out of pretraining (stratified by primary site) to evaluate the embeddings."""
    cfg = RNAEncodingConfig.from_dict(options)
    return rna.split_tcga(tcga_samples, cfg.tcga_test_fraction, cfg.seed)


def train_rna_encoder(
    tcga_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    gene_groups: pd.DataFrame,
    tcga_split: pd.DataFrame,
    lineage_split: pd.DataFrame,
    split: dict,
    options: dict,
    variant: dict,
):
    """Pretrain on TCGA, continue on the cohort (lineages held out by the split excluded): model and history."""
    provenance.require_split(lineage_split, SplitConfig.from_dict(split).to_dict(), "lineage_split", "rna_encoding")
    name = RNAVariant.from_dict(variant).name
    return rna.train_encoder(
        tcga_features,
        cohort_features,
        cohort_samples,
        gene_groups,
        tcga_split,
        lineage_split,
        RNAEncodingConfig.from_dict(options),
        name,
    )


def embed_rna(model, tcga_features: pd.DataFrame, cohort_features: pd.DataFrame, options: dict) -> pd.DataFrame:
    """CLS embeddings of every TCGA and cohort sample."""
    return rna.embed_samples(model, tcga_features, cohort_features, RNAEncodingConfig.from_dict(options))


def evaluate_rna_embeddings(
    embeddings: pd.DataFrame,
    model,
    tcga_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    tcga_split: pd.DataFrame,
    options: dict,
):
    """Fig. 5 (t-SNE) and its numbers."""
    return rna.fig5(embeddings, model, tcga_features, cohort_features, tcga_split, RNAEncodingConfig.from_dict(options))

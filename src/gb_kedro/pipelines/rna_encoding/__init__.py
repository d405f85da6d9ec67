"""``rna_encoding``: gene-group masked autoencoder + lineage contrastive loss, TCGA then cohort."""

from gb_kedro.pipelines.rna_encoding.pipeline import create_pipeline

__all__ = ["create_pipeline"]

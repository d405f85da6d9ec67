"""``wsi_encoding``: ViT patch encoder trained with a lineage triplet loss (paper 2.3, eq. 6)."""

from gb_kedro.pipelines.wsi_encoding.pipeline import create_pipeline

__all__ = ["create_pipeline"]

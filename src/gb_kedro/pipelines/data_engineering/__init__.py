"""``data_engineering``: raw RNA-seq, annotation and PPI in; harmonised matrices and gene groups out."""

from gb_kedro.pipelines.data_engineering.pipeline import create_pipeline

__all__ = ["create_pipeline"]

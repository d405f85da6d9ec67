"""``synthetic_cohort``: writes the embedded demo cohort into ``data/01_raw`` in the real file layouts."""

from gb_kedro.pipelines.synthetic_cohort.pipeline import create_oracle_pipeline, create_pipeline

__all__ = ["create_oracle_pipeline", "create_pipeline"]

"""``reporting``: Grad-CAM gene ranking (Table 2) scored against planted truth, enrichment, survival, one HTML report."""

from gb_kedro.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]

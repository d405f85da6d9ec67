"""``multimodal``: ALBEF-style alignment, fusion, matching and RNA decoding; Table 1 and its ablations."""

from gb_kedro.pipelines.multimodal.pipeline import create_pipeline

__all__ = ["create_pipeline"]

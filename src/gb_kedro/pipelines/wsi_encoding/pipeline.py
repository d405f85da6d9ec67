"""The ``wsi_encoding`` pipeline."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.pipelines.wsi_encoding import nodes


def patch_encoder_pipeline(name: str) -> Pipeline:
    """Patch encoder ``name`` of ``patch_features.encoders`` (namespace ``name``): embeddings, match report,
    metrics and confusion plot."""
    embed, evaluate = nodes.patch_encoder(name)
    shared = ["patch_index", "patch_pixels", "patch_stores", "colour_features", "morphometry_features"]
    params = ["params:patches", "params:patch_features", "params:split", "params:wsi_encoding"]
    pipe = Pipeline(
        [
            Node(
                embed,
                ["patch_index", "patch_pixels", "patch_stores", "params:patches", "params:patch_features"],
                ["patch_embeddings", "patch_feature_match"],
                name="embed_patch_features",
            ),
            Node(
                evaluate,
                [
                    "patch_embeddings",
                    "patch_feature_match",
                    "colour_features",
                    "morphometry_features",
                    "params:split",
                    "params:wsi_encoding",
                    "params:lineage_classifier",
                ],
                ["patch_metrics", "patch_confusion"],
                name="evaluate_patch_features",
            ),
        ],
        tags=["wsi_encoding", "patch_features"],
    )
    return Pipeline(
        pipe,
        namespace=name,
        inputs={n: n for n in shared},
        parameters={p: p for p in [*params, "params:lineage_classifier"]},
    )


def create_pipeline(shape=None, **kwargs) -> Pipeline:
    """The ViT (trained, embedded, evaluated) and one namespace per patch encoder of ``shape.patch_encoders``."""
    encoders = shape.patch_encoders if shape is not None else ()
    return sum((patch_encoder_pipeline(name) for name in encoders), Pipeline([])) + Pipeline(
        [
            Node(
                nodes.measure_morphometry,
                ["patch_index", "patch_pixels", "params:patches", "params:wsi_encoding", "params:morphometry"],
                "morphometry_features",
                name="measure_morphometry",
            ),
            Node(
                nodes.measure_colour,
                ["patch_index", "patch_pixels", "params:patches", "params:wsi_encoding"],
                "colour_features",
                name="measure_colour",
            ),
            Node(
                nodes.train_wsi_encoder,
                [
                    "patch_index",
                    "patch_pixels",
                    "morphometry_features",
                    "params:split",
                    "params:patches",
                    "params:wsi_encoding",
                ],
                ["wsi_encoder", "wsi_training_history"],
                name="train_wsi_encoder",
            ),
            Node(
                nodes.embed_wsi_patches,
                ["wsi_encoder", "patch_index", "patch_pixels", "params:patches", "params:wsi_encoding"],
                "wsi_embeddings",
                name="embed_wsi_patches",
            ),
            Node(
                nodes.evaluate_wsi_embeddings,
                [
                    "wsi_embeddings",
                    "colour_features",
                    "wsi_encoder",
                    "morphometry_features",
                    "params:split",
                    "params:wsi_encoding",
                    "params:lineage_classifier",
                ],
                ["wsi_metrics", "wsi_confusion"],
                name="evaluate_wsi_embeddings",
            ),
        ],
        tags="wsi_encoding",
    )

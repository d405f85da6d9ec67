"""The ``wsi_encoding`` pipeline."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.pipelines.wsi_encoding import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
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

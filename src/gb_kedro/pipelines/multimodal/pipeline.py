"""The ``multimodal`` pipeline: one namespaced modular pipeline per Table 1 row, the colour baseline, Table 1."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.multimodal import TABLE1_ROWS
from gb_kedro.pipelines.multimodal import nodes

SHARED_INPUTS = ["wsi_encoder", "patch_index", "slide_manifest", "cohort_features", "cohort_samples"]


def row_pipeline() -> Pipeline:
    """Train and evaluate one configuration; namespaced per Table 1 row."""
    return Pipeline(
        [
            Node(
                nodes.train_multimodal,
                [
                    "wsi_encoder",
                    "rna_encoder",
                    "patch_index",
                    "slide_manifest",
                    "cohort_features",
                    "cohort_samples",
                    "params:split",
                    "params:multimodal",
                    "params:wsi_encoding",
                    "params:table1_row",
                ],
                ["multimodal_model", "multimodal_history"],
                name="train_multimodal",
            ),
            Node(
                nodes.evaluate_multimodal,
                [
                    "multimodal_model",
                    "patch_index",
                    "slide_manifest",
                    "cohort_features",
                    "cohort_samples",
                    "params:split",
                    "params:multimodal",
                    "params:wsi_encoding",
                ],
                ["retrieval_metrics", "retrieval_confusion", "retrieval_predictions"],
                name="evaluate_multimodal",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    shared_params = {p: p for p in ("params:multimodal", "params:wsi_encoding", "params:split")}
    rows = [
        Pipeline(
            row_pipeline(),
            namespace=row,
            inputs={**{n: n for n in SHARED_INPUTS}, "rna_encoder": f"{grouping}.rna_encoder"},
            parameters=shared_params,
        )
        for row, grouping in TABLE1_ROWS.items()
    ]
    colour = Pipeline(
        [
            Node(
                nodes.colour_baseline,
                [
                    "patch_index",
                    "slide_manifest",
                    "cohort_features",
                    "cohort_samples",
                    "params:split",
                    "params:multimodal",
                    "params:wsi_encoding",
                    "params:colour_baseline.table1_row",
                ],
                "colour_baseline.retrieval_metrics",
                name="colour_baseline",
                namespace="colour_baseline",
            )
        ]
    )
    morphometry = Pipeline(
        [
            Node(
                nodes.morphometry_baseline,
                [
                    "morphometry_features",
                    "patch_index",
                    "cohort_features",
                    "cohort_samples",
                    "params:split",
                    "params:multimodal",
                    "params:morphometry_baseline.table1_row",
                ],
                "morphometry_baseline.retrieval_metrics",
                name="morphometry_baseline",
                namespace="morphometry_baseline",
            )
        ]
    )
    table = Pipeline(
        [
            Node(
                nodes.assemble_table1,
                [f"{row}.retrieval_metrics" for row in (*TABLE1_ROWS, "colour_baseline", "morphometry_baseline")],
                ["table1", "table1_markdown"],
                name="assemble_table1",
            )
        ]
    )
    return Pipeline([*rows, colour, morphometry, table], tags="multimodal")

"""The ``multimodal`` pipeline: one namespaced modular pipeline per Table 1 row, the non-deep rows (colour,
morphometry, the strong morphometry classifier, the expression bridge), Table 1 and every row paired with the
strong baseline by slide; the model row trained again (``seed_<k>``: Table 2's seed stability; ``null_<k>``: its permutation null),
each retraining with its held-out predictions; the model row's embeddings of the whole cohort.

The shape (rows and their RNA groupings, the model row, the number of retrainings) is
:class:`gb_kedro.config.PipelineShape`, read from conf when the pipelines are built."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.config import BASELINE_ROWS, PipelineShape
from gb_kedro.pipelines.multimodal import nodes

DATA = ["patch_index", "patch_pixels", "cohort_features", "cohort_samples"]
PARAMS = ["params:split", "params:multimodal", "params:patches"]


def _shared(names) -> dict[str, str]:
    return {n: n for n in names}


def row_pipeline() -> Pipeline:
    """Train and evaluate one configuration; namespaced per Table 1 row."""
    return Pipeline(
        [
            Node(
                nodes.train_multimodal,
                ["wsi_encoder", "rna_encoder", *DATA, *PARAMS, "params:table1_row"],
                ["multimodal_model", "multimodal_history"],
                name="train_multimodal",
            ),
            Node(
                nodes.evaluate_multimodal,
                ["multimodal_model", *DATA, *PARAMS],
                ["retrieval_metrics", "retrieval_confusion", "retrieval_predictions"],
                name="evaluate_multimodal",
            ),
        ]
    )


def retraining_pipeline(kind: str, slot: int) -> Pipeline:
    """Retraining ``slot`` of the model row (``kind``: ``seed`` or ``null``) and its held-out predictions."""
    return Pipeline(
        [
            Node(
                nodes.trainer(kind, slot),
                ["wsi_encoder", "rna_encoder", *DATA, *PARAMS, "params:table1_row"],
                ["multimodal_model", "multimodal_history"],
                name=f"train_{kind}",
            ),
            Node(
                nodes.predict_held_out,
                ["multimodal_model", *DATA, *PARAMS],
                "retrieval_predictions",
                name="predict_held_out",
            ),
        ]
    )


def adapter_pipeline(encoder: str, grouping: str) -> Pipeline:
    """Table 1 row ``<encoder>_adapter`` (namespace): patch encoder ``encoder``'s features, an adapter, the model
    row's RNA encoder (``grouping``) and losses."""
    train, evaluate = nodes.adapter_row(encoder)
    data = ["patch_embeddings", "patch_index", "cohort_features", "cohort_samples", "params:split", "params:multimodal"]
    pipe = Pipeline(
        [
            Node(
                train,
                ["rna_encoder", *data, "params:feature_adapter"],
                ["multimodal_model", "multimodal_history"],
                name="train_multimodal",
            ),
            Node(
                evaluate,
                ["multimodal_model", *data, "params:patches"],
                ["retrieval_metrics", "retrieval_confusion", "retrieval_predictions"],
                name="evaluate_multimodal",
            ),
        ]
    )
    return Pipeline(
        pipe,
        namespace=f"{encoder}_adapter",
        inputs={
            **_shared(["patch_index", "cohort_features", "cohort_samples"]),
            "rna_encoder": f"{grouping}.rna_encoder",
            "patch_embeddings": f"{encoder}.patch_embeddings",
        },
        parameters=_shared([*PARAMS, "params:feature_adapter"]),
    )


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    if shape is None:
        from gb_kedro.pipeline_registry import pipeline_shape

        shape = pipeline_shape()
    shared = ["wsi_encoder", *DATA]
    model_row = shape.model_row
    rows = [
        Pipeline(
            row_pipeline(),
            namespace=row,
            inputs={**_shared(shared), "rna_encoder": f"{grouping}.rna_encoder"},
            parameters=_shared(PARAMS),
        )
        for row, grouping in shape.rows.items()
    ]
    retrainings = [
        Pipeline(
            retraining_pipeline(kind, slot),
            namespace=f"{kind}_{slot}",
            inputs={**_shared(shared), "rna_encoder": f"{shape.rows[model_row]}.rna_encoder"},
            parameters={**_shared(PARAMS), "params:table1_row": f"params:{model_row}.table1_row"},
        )
        for kind, slots in (("seed", range(1, shape.seeds)), ("null", range(shape.permutations)))
        for slot in slots
    ]
    baselines = Pipeline(
        [
            Node(
                nodes.non_deep_row(row),
                [
                    features,
                    "patch_index",
                    "cohort_features",
                    "cohort_samples",
                    "params:split",
                    "params:multimodal",
                    f"params:{row}.table1_row",
                    *(f"params:{cls.KEY}" for cls in shared),
                ],
                [f"{row}.retrieval_metrics", f"{row}.retrieval_predictions"],
                name=row,
                namespace=row,
            )
            for row in BASELINE_ROWS
            for features, _, shared in [nodes.NON_DEEP_ROWS[row]]
        ]
    )
    adapters = [adapter_pipeline(encoder, shape.rows[model_row]) for encoder in shape.patch_encoders]
    table_rows = (*shape.rows, *(f"{encoder}_adapter" for encoder in shape.patch_encoders), *BASELINE_ROWS)
    cohort = Pipeline(
        [
            Node(
                nodes.embed_cohort,
                [f"{model_row}.multimodal_model", *DATA, *PARAMS],
                ["multimodal_patch_embeddings", "multimodal_rna_embeddings"],
                name="embed_cohort",
            ),
            Node(
                nodes.assemble_table1,
                [f"{row}.retrieval_metrics" for row in table_rows],
                ["table1", "table1_markdown"],
                name="assemble_table1",
            ),
            Node(
                nodes.compare_rows,
                {"options": "params:multimodal", **{row: f"{row}.retrieval_predictions" for row in table_rows}},
                ["table1_paired", "table1_paired_markdown"],
                name="compare_rows",
            ),
        ]
    )
    return Pipeline([*rows, *adapters, *retrainings, baselines, cohort], tags="multimodal")

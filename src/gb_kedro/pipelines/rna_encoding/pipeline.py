"""The ``rna_encoding`` pipeline: one namespaced modular pipeline per gene grouping (``rna_encoding.groupings``)."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.config import PipelineShape
from gb_kedro.pipelines.rna_encoding import nodes

SHARED_INPUTS = ["tcga_features", "cohort_features", "cohort_samples", "tcga_split", "lineage_split"]


def variant_pipeline() -> Pipeline:
    """Train, embed and evaluate one RNA encoder; namespaced per gene grouping."""
    return Pipeline(
        [
            Node(
                nodes.train_rna_encoder,
                [
                    "tcga_features",
                    "cohort_features",
                    "cohort_samples",
                    "gene_groups",
                    "tcga_split",
                    "lineage_split",
                    "params:split",
                    "params:rna_encoding",
                    "params:rna_variant",
                ],
                ["rna_encoder", "rna_training_history"],
                name="train_rna_encoder",
            ),
            Node(
                nodes.embed_rna,
                ["rna_encoder", "tcga_features", "cohort_features", "params:rna_encoding"],
                "rna_embeddings",
                name="embed_rna",
            ),
            Node(
                nodes.evaluate_rna_embeddings,
                [
                    "rna_embeddings",
                    "rna_encoder",
                    "tcga_features",
                    "cohort_features",
                    "tcga_split",
                    "params:rna_encoding",
                ],
                ["rna_metrics", "rna_tsne"],
                name="evaluate_rna_embeddings",
            ),
        ]
    )


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    """TCGA's held-out samples, then one namespaced encoder per gene grouping of the shape (``ppi``, ``chromosome``)."""
    if shape is None:
        from gb_kedro.pipeline_registry import pipeline_shape

        shape = pipeline_shape()
    shared = Pipeline(
        [
            Node(
                nodes.split_tcga_samples,
                ["tcga_samples", "params:rna_encoding"],
                "tcga_split",
                name="split_tcga_samples",
            )
        ]
    )
    variants = [
        Pipeline(
            variant_pipeline(),
            namespace=variant,
            inputs={**{name: name for name in SHARED_INPUTS}, "gene_groups": f"gene_groups_{variant}"},
            parameters={"params:rna_encoding": "params:rna_encoding", "params:split": "params:split"},
        )
        for variant in shape.groupings
    ]
    return Pipeline([shared, *variants], tags="rna_encoding")

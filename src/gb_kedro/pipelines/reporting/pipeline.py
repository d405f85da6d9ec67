"""The ``reporting`` pipeline: Grad-CAM genes (Table 2) of the model row and of its retrainings (their stability
over seeds, their validation against planted truth with the permutation null; the models are trained by the
multimodal pipeline), the morphology-link gene table (genes predicted from the images of unseen lineages), every
gene ranking scored against the planted drivers and decoys, the RNA encoders' morphology-axis probe, enrichment,
survival and one HTML report. Reporting reads models, predictions, embeddings and counts; it never trains."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.config import PipelineShape
from gb_kedro.pipelines.reporting import nodes

PIXELS = ["patch_index", "patch_pixels", "cohort_features"]


def counts_pipeline(namespace: str) -> Pipeline:
    """The held-out Grad-CAM gene counts of one retraining of the model row (``seed_<k>``, ``null_<k>``)."""
    return Pipeline(
        [
            Node(
                nodes.count_gradcam_genes,
                ["multimodal_model", "retrieval_predictions", *PIXELS, "params:reporting", "params:patches"],
                "gene_counts",
                name="count_gradcam_genes",
            )
        ],
        namespace=namespace,
        inputs={n: n for n in PIXELS},
        parameters={p: p for p in ("params:reporting", "params:patches")},
    )


def gene_nodes(shape: PipelineShape) -> list[Node]:
    """Table 2 across seeds, the morphology-link table, the scoring of every ranking, the RNA axis probe."""
    model = f"{shape.model_row}.multimodal_model"
    return [
        Node(
            nodes.seed_stability,
            [
                "gene_occurrence",
                model,
                f"gene_groups_{shape.rows[shape.model_row]}",
                "truth_drivers",
                "params:reporting",
                *[f"seed_{k}.gene_counts" for k in range(1, shape.seeds)],
            ],
            ["table2_seeds", "table2_per_seed", "seed_stability", "seed_stability_figure"],
            name="gradcam_seed_stability",
        ),
        Node(
            nodes.morphology_link_table,
            {
                "wsi_embeddings": "wsi_embeddings",
                "morphometry_features": "morphometry_features",
                "cohort_features": "cohort_features",
                "cohort_samples": "cohort_samples",
                "gene_groups": "gene_groups_ppi",
                "options": "params:reporting",
                **{e: f"{e}.patch_embeddings" for e in shape.patch_encoders},
            },
            ["morphology_link", "morphology_link_markdown", "morphology_link_summary", "morphology_link_figure"],
            name="morphology_link_table",
        ),
        Node(
            nodes.score_gene_rankings,
            [
                "morphology_link",
                "gene_occurrence",
                "table2_seeds",
                "cohort_features",
                "truth_drivers",
                "params:reporting",
            ],
            ["gene_scoring", "axis_recovery"],
            name="score_gene_rankings",
        ),
        Node(
            nodes.probe_axes,
            {
                "tcga_features": "tcga_features",
                "tcga_split": "tcga_split",
                "cohort_features": "cohort_features",
                "cohort_samples": "cohort_samples",
                "truth_lineages": "truth_lineages",
                "options": "params:reporting",
                **{g: f"{g}.rna_embeddings" for g in shape.groupings},
            },
            "axis_probe",
            name="probe_rna_axes",
        ),
        Node(
            nodes.probe_image_axes,
            {
                "wsi_embeddings": "wsi_embeddings",
                "multimodal_patch_embeddings": "multimodal_patch_embeddings",
                "morphometry_features": "morphometry_features",
                "colour_features": "colour_features",
                "patch_index": "patch_index",
                "truth_lineages": "truth_lineages",
                "oracle_features": "oracle_features",
                "options": "params:reporting",
                **{e: f"{e}.patch_embeddings" for e in shape.patch_encoders},
            },
            ["image_axis_probe", "image_axis_probe_figure"],
            name="probe_image_axes",
        ),
    ]


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    """Table 2 of the model row, the Grad-CAM counts of its ``seed_<k>`` and ``null_<k>`` retrainings, their
    validation, enrichment, survival, the gene tables and the report."""
    if shape is None:
        from gb_kedro.pipeline_registry import pipeline_shape

        shape = pipeline_shape()
    model, predictions = f"{shape.model_row}.multimodal_model", f"{shape.model_row}.retrieval_predictions"
    grouping = shape.rows[shape.model_row]  # the model row's RNA grouping: Table 2's gene groups
    counts = [counts_pipeline(f"seed_{k}") for k in range(1, shape.seeds)]
    counts += [counts_pipeline(f"null_{k}") for k in range(shape.permutations)]
    histories = {f"rna:{g}": f"{g}.rna_training_history" for g in shape.groupings}
    histories["wsi:wsi"] = "wsi_training_history"
    histories.update({f"multimodal:{row}": f"{row}.multimodal_history" for row in shape.rows})
    main = Pipeline(
        [
            Node(
                nodes.rank_genes_gradcam,
                [model, predictions, *PIXELS, f"gene_groups_{grouping}", "params:reporting", "params:patches"],
                ["gene_occurrence", "table2", "table2_markdown", "gradcam_groups", "gradcam_patches", "gradcam_figure"],
                name="rank_genes_gradcam",
            ),
            Node(
                nodes.validate_against_truth,
                [
                    "gene_occurrence",
                    model,
                    predictions,
                    "cohort_features",
                    "truth_drivers",
                    "params:reporting",
                    *[f"null_{k}.gene_counts" for k in range(shape.permutations)],
                ],
                "gradcam_validation",
                name="validate_against_truth",
            ),
            Node(
                nodes.enrich_top_genes,
                ["gene_occurrence", "morphology_link", "gene_table", "params:reporting"],
                "enrichment",
                name="enrich_top_genes",
            ),
            Node(
                nodes.aggressiveness,
                [
                    "multimodal_patch_embeddings",
                    "multimodal_rna_embeddings",
                    "slide_manifest",
                    "cohort_samples",
                    "params:reporting",
                ],
                ["mouse_outcomes", "cluster_survival", "survival_tests", "survival_km"],
                name="aggressiveness",
            ),
            Node(nodes.training_curves, histories, "training_curves", name="training_curves"),
            Node(
                nodes.build_report,
                {
                    "options": "params:reporting",
                    "split": "params:split",
                    "patches": "params:patches",
                    "marker": "synthetic_marker",
                    "rna_encoder": f"{grouping}.rna_encoder",
                    "wsi_encoder": "wsi_encoder",
                    "model": model,
                    "qc_pngs": "slide_qc_thumbnails",
                    "truth_drivers": "truth_drivers",
                    "table1": "table1",
                    "table1_paired": "table1_paired",
                    "table2": "table2",
                    "enrichment": "enrichment",
                    "gradcam_groups": "gradcam_groups",
                    "cluster_survival": "cluster_survival",
                    "survival_tests": "survival_tests",
                    "mice": "mouse_outcomes",
                    "validation": "gradcam_validation",
                    "wsi": "wsi_metrics",
                    "rna_metrics": f"{grouping}.rna_metrics",
                    "gradcam": "gradcam_figure",
                    "gradcam_patches": "gradcam_patches",
                    "km": "survival_km",
                    "curves": "training_curves",
                    **{f"tsne_{g}": f"{g}.rna_tsne" for g in shape.groupings},
                    **{f"patch_metrics_{e}": f"{e}.patch_metrics" for e in shape.patch_encoders},
                    "confusion": f"{shape.model_row}.retrieval_confusion",
                    "link_table": "morphology_link",
                    "scoring": "gene_scoring",
                    "axes": "axis_recovery",
                    "seeds_summed": "table2_seeds",
                    "seeds_top": "table2_per_seed",
                    "axis_probe": "axis_probe",
                    "image_axes": "image_axis_probe",
                    "image_axes_figure": "image_axis_probe_figure",
                    "link_figure": "morphology_link_figure",
                    "seeds_figure": "seed_stability_figure",
                    "link_summary": "morphology_link_summary",
                    "seeds_metrics": "seed_stability",
                },
                "report",
                name="build_report",
            ),
        ]
    )
    return Pipeline([*counts, main, Pipeline(gene_nodes(shape))], tags="reporting")

"""The ``reporting`` pipeline: Grad-CAM genes (Table 2) of the paper's best configuration (``ppi_no_recon``),
their stability over retrainings (one namespaced pipeline per seed) and their validation against planted
truth with a permutation null (one namespaced retraining pipeline per shuffle); the morphology-link gene table
(genes predicted from the images of unseen lineages); every gene ranking scored against the planted drivers
and decoys; the RNA encoders' morphology-axis probe; enrichment, survival and one HTML report."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.multimodal import TABLE1_ROWS
from gb_kedro.pipelines.reporting import nodes
from gb_kedro.reporting.seeds import SEED_SLOTS
from gb_kedro.reporting.validation import PERMUTATION_SLOTS

MODEL_ROW = "ppi_no_recon"  # the paper's best row: all trainable, no reconstruction, PPI groups
DATA = ["patch_index", "slide_manifest", "cohort_features", "cohort_samples"]


def permutation_pipeline(draw: int) -> Pipeline:
    """Retraining ``draw`` of the permutation null and its Table 2 precision (namespace ``permutation_<draw>``)."""
    params = ["params:reporting", "params:multimodal", "params:wsi_encoding"]
    nodes_ = [
        Node(
            nodes.permutation_null_trainer(draw),
            [
                "wsi_encoder",
                f"{TABLE1_ROWS[MODEL_ROW]}.rna_encoder",
                *DATA,
                "truth_drivers",
                *params,
                f"params:{MODEL_ROW}.table1_row",
            ],
            ["null_model", "null_history"],
            name="train_permutation_null",
        ),
        Node(
            nodes.score_permutation_null,
            ["null_model", *DATA, "truth_drivers", *params],
            "null_precision",
            name="score_permutation_null",
        ),
    ]
    shared = ["wsi_encoder", f"{TABLE1_ROWS[MODEL_ROW]}.rna_encoder", *DATA, "truth_drivers"]
    return Pipeline(
        nodes_,
        namespace=f"permutation_{draw}",
        inputs={n: n for n in shared},
        parameters={p: p for p in (*params, f"params:{MODEL_ROW}.table1_row")},
    )


def seed_pipeline(slot: int) -> Pipeline:
    """Seed retraining ``slot`` of Table 2's stability and its held-out Grad-CAM counts (namespace ``seed_<slot>``)."""
    params = ["params:reporting", "params:multimodal", "params:wsi_encoding", f"params:{MODEL_ROW}.table1_row"]
    shared = ["wsi_encoder", f"{TABLE1_ROWS[MODEL_ROW]}.rna_encoder", *DATA[:3]]
    node = Node(
        nodes.seed_trainer(slot),
        [*shared, "cohort_samples", *params],
        "gene_counts",
        name="train_seed",
    )
    return Pipeline(
        [node],
        namespace=f"seed_{slot}",
        inputs={n: n for n in [*shared, "cohort_samples"]},
        parameters={p: p for p in params},
    )


def gene_nodes() -> list[Node]:
    """Table 2 across seeds, the morphology-link table, the scoring of every ranking, the RNA axis probe."""
    return [
        Node(
            nodes.seed_stability,
            [
                "gene_occurrence",
                f"{MODEL_ROW}.multimodal_model",
                "gene_groups_ppi",
                "truth_drivers",
                "params:reporting",
                *[f"seed_{k}.gene_counts" for k in range(1, SEED_SLOTS + 1)],
            ],
            ["table2_seeds", "table2_per_seed", "seed_stability", "seed_stability_figure"],
            name="gradcam_seed_stability",
        ),
        Node(
            nodes.morphology_link_table,
            [
                "wsi_embeddings",
                "morphometry_features",
                "cohort_features",
                "cohort_samples",
                "gene_groups_ppi",
                "params:reporting",
            ],
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
            [
                "ppi.rna_embeddings",
                "chromosome.rna_embeddings",
                "tcga_features",
                "tcga_split",
                "cohort_features",
                "cohort_samples",
                "truth_lineages",
                "params:reporting",
            ],
            "axis_probe",
            name="probe_rna_axes",
        ),
    ]


def create_pipeline(**kwargs) -> Pipeline:
    """Table 2, its validation with ``PERMUTATION_SLOTS`` namespaced null pipelines (the first
    ``reporting.n_permutations`` of them train; the others pass), enrichment, survival, the report."""
    model, predictions = f"{MODEL_ROW}.multimodal_model", f"{MODEL_ROW}.retrieval_predictions"
    P = ["params:reporting", "params:wsi_encoding"]
    nulls = [permutation_pipeline(j) for j in range(PERMUTATION_SLOTS)]
    seeds = [seed_pipeline(k) for k in range(1, SEED_SLOTS + 1)]
    main = Pipeline(
        [
            Node(
                nodes.rank_genes_gradcam,
                [model, predictions, "patch_index", "slide_manifest", "cohort_features", "gene_groups_ppi", *P],
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
                    *[f"permutation_{j}.null_precision" for j in range(PERMUTATION_SLOTS)],
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
                [model, *DATA, "params:reporting", "params:multimodal", "params:wsi_encoding"],
                ["mouse_outcomes", "cluster_survival", "survival_tests", "survival_km"],
                name="aggressiveness",
            ),
            Node(
                nodes.training_curves,
                {
                    "rna_ppi": "ppi.rna_training_history",
                    "rna_chromosome": "chromosome.rna_training_history",
                    "wsi_history": "wsi_training_history",
                    **{row: f"{row}.multimodal_history" for row in TABLE1_ROWS},
                },
                "training_curves",
                name="training_curves",
            ),
            Node(
                nodes.build_report,
                {
                    "options": "params:reporting",
                    "split": "params:split",
                    "cohort": "params:synthetic_cohort",
                    "rna_options": "params:rna_encoding",
                    "wsi_options": "params:wsi_encoding",
                    "multimodal_options": "params:multimodal",
                    "qc_pngs": "slide_qc_thumbnails",
                    "truth_drivers": "truth_drivers",
                    "table1": "table1",
                    "table2": "table2",
                    "enrichment": "enrichment",
                    "gradcam_groups": "gradcam_groups",
                    "cluster_survival": "cluster_survival",
                    "survival_tests": "survival_tests",
                    "mice": "mouse_outcomes",
                    "validation": "gradcam_validation",
                    "wsi": "wsi_metrics",
                    "rna_ppi": "ppi.rna_metrics",
                    "gradcam": "gradcam_figure",
                    "km": "survival_km",
                    "curves": "training_curves",
                    "tsne_ppi": "ppi.rna_tsne",
                    "tsne_chromosome": "chromosome.rna_tsne",
                    "confusion": f"{MODEL_ROW}.retrieval_confusion",
                    "link_table": "morphology_link",
                    "scoring": "gene_scoring",
                    "axes": "axis_recovery",
                    "seeds_summed": "table2_seeds",
                    "seeds_top": "table2_per_seed",
                    "axis_probe": "axis_probe",
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
    return Pipeline([*nulls, *seeds, main, Pipeline(gene_nodes())], tags="reporting")

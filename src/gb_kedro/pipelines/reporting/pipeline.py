"""The ``reporting`` pipeline: Grad-CAM genes (Table 2) of the paper's best configuration (``ppi_no_recon``),
their validation against planted truth, enrichment, survival and one HTML report."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.pipelines.multimodal.pipeline import ROWS
from gb_kedro.pipelines.reporting import nodes

MODEL_ROW = "ppi_no_recon"  # the paper's best row: all trainable, no reconstruction, PPI groups
P = ["params:reporting", "params:wsi_encoding"]


def create_pipeline(**kwargs) -> Pipeline:
    model, predictions = f"{MODEL_ROW}.multimodal_model", f"{MODEL_ROW}.retrieval_predictions"
    return Pipeline(
        [
            Node(nodes.rank_genes_gradcam, [model, predictions, "patch_index", "slide_manifest", "cohort_features", "gene_groups_ppi", *P],
                 ["gene_occurrence", "table2", "table2_markdown", "gradcam_groups", "gradcam_patches", "gradcam_figure"], name="rank_genes_gradcam"),
            Node(nodes.validate_against_truth,
                 ["gene_occurrence", model, "wsi_encoder", "ppi.rna_encoder", "patch_index", "slide_manifest", "cohort_features", "cohort_samples", "truth_drivers",
                  "params:reporting", "params:multimodal", f"params:{MODEL_ROW}.table1_row", "params:wsi_encoding"],
                 "gradcam_validation", name="validate_against_truth"),
            Node(nodes.enrich_top_genes, ["gene_occurrence", "gene_table", "params:reporting"], "enrichment", name="enrich_top_genes"),
            Node(nodes.aggressiveness, [model, "patch_index", "slide_manifest", "cohort_features", "cohort_samples", *P],
                 ["mouse_outcomes", "cluster_survival", "survival_tests", "survival_km"], name="aggressiveness"),
            Node(nodes.curves_node, ["ppi.rna_training_history", "chromosome.rna_training_history", "wsi_training_history", *[f"{r}.multimodal_history" for r in ROWS]],
                 "training_curves", name="training_curves"),
            Node(
                nodes.build_report,
                ["table1", "table2", "gradcam_validation", "enrichment", "gradcam_groups", "cluster_survival", "survival_tests", "mouse_outcomes",
                 "wsi_metrics", "ppi.rna_metrics", "gradcam_figure", "survival_km", "training_curves", "ppi.rna_tsne", "chromosome.rna_tsne",
                 f"{MODEL_ROW}.retrieval_confusion", "slide_qc_thumbnails", "params:reporting"],
                "report",
                name="build_report",
            ),
        ],
        tags="reporting",
    )

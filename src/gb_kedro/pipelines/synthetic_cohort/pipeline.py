"""The ``synthetic_cohort`` pipeline."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.pipelines.synthetic_cohort.nodes import (
    claim_raw_directory,
    generate_slides,
    generate_synthetic_cohort,
    oracle_patch_features,
    summarise_synthetic_cohort,
)

RAW_OUTPUTS = {
    "annotation": "gencode_genes_raw",
    "signalling": "ppi_raw",
    "kg": "primekg_raw",
    "tcga_star": "tcga_expression_raw",
    "tcga_sample_sheet": "tcga_sample_sheet",
    "cohort_matrix": "cohort_expression_raw",
    "cohort_sample_sheet": "cohort_sample_sheet",
    "truth_genes": "truth_genes",
    "truth_drivers": "truth_drivers",
    "truth_lineages": "truth_lineages",
    "truth_tcga": "truth_tcga_centres",
    "modules_gmt": "truth_planted_modules_gmt",
}


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                claim_raw_directory,
                inputs="params:synthetic_cohort",
                outputs="synthetic_marker",
                name="claim_raw_directory",
            ),
            Node(
                generate_synthetic_cohort,
                inputs="synthetic_marker",
                outputs=RAW_OUTPUTS,
                name="generate_synthetic_cohort",
            ),
            Node(
                generate_slides,
                inputs=["synthetic_marker", "truth_lineages", "params:synthetic_cohort"],
                outputs=["slide_images", "slide_manifest"],
                name="generate_slides",
            ),
            Node(
                summarise_synthetic_cohort,
                inputs=[
                    "synthetic_marker",
                    "tcga_sample_sheet",
                    "cohort_sample_sheet",
                    "truth_lineages",
                    "slide_manifest",
                ],
                outputs="synthetic_cohort_summary",
                name="summarise_synthetic_cohort",
            ),
        ],
        tags="synthetic",
    )


def create_oracle_pipeline(**kwargs) -> Pipeline:
    """What the generator drew in each tumour patch, once the slides are tiled (``patch_index``): the ceiling row
    of the image axis probe. Part of the default run on the embedded cohort, never of ``analysis``."""
    return Pipeline(
        [
            Node(
                oracle_patch_features,
                inputs=["synthetic_marker", "truth_lineages", "patch_index"],
                outputs="oracle_features",
                name="oracle_patch_features",
            )
        ],
        tags="synthetic",
    )

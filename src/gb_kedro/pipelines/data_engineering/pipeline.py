"""The ``data_engineering`` pipeline: RNA-seq + PPI (nodes tagged ``rna_ppi``) and slides (tagged ``slides``);
``kedro run --pipelines data_engineering --tags rna_ppi`` runs the first part alone."""

from kedro.pipeline import Node, Pipeline

from gb_kedro.pipelines.data_engineering import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.prepare_gene_annotation,
                ["gencode_genes_raw", "hgnc_genes_raw"],
                ["gene_annotation", "gene_history", "annotation_dropped_genes"],
                name="prepare_gene_annotation",
                tags="rna_ppi",
            ),
            Node(
                nodes.assemble_tcga,
                [
                    "tcga_expression_raw",
                    "tcga_sample_sheet",
                    "gene_annotation",
                    "gene_history",
                    "params:data_engineering.tcga",
                    "params:data_engineering.minimums",
                ],
                ["tcga_expression", "tcga_samples", "tcga_dropped_samples"],
                name="assemble_tcga",
                tags="rna_ppi",
            ),
            Node(
                nodes.read_cohort,
                [
                    "cohort_expression_raw",
                    "cohort_sample_sheet",
                    "gene_annotation",
                    "gene_history",
                    "params:data_engineering.cohort",
                    "params:data_engineering.minimums",
                ],
                ["cohort_expression", "cohort_samples"],
                name="read_cohort",
                tags="rna_ppi",
            ),
            Node(
                nodes.harmonise,
                [
                    "tcga_expression",
                    "cohort_expression",
                    "gene_annotation",
                    "gene_history",
                    "annotation_dropped_genes",
                    "params:data_engineering.harmonise",
                    "params:data_engineering.minimums",
                ],
                ["tcga_harmonised", "cohort_harmonised", "harmonised_genes", "harmonise_dropped_genes"],
                name="harmonise_genes",
                tags="rna_ppi",
            ),
            Node(
                nodes.normalise,
                [
                    "tcga_harmonised",
                    "cohort_harmonised",
                    "harmonised_genes",
                    "harmonise_dropped_genes",
                    "params:data_engineering.tcga",
                    "params:data_engineering.cohort",
                    "params:data_engineering.variance",
                ],
                ["tcga_features", "cohort_features", "gene_table", "dropped_genes", "data_engineering_summary"],
                name="normalise",
                tags="rna_ppi",
            ),
            Node(
                nodes.read_ppi,
                ["ppi_raw", "gene_annotation", "gene_history", "params:data_engineering.ppi"],
                ["ppi_edges", "ppi_dropped_nodes", "ppi_summary"],
                name="read_ppi",
                tags="rna_ppi",
            ),
            Node(
                nodes.ppi_gene_groups,
                ["ppi_edges", "gene_table", "tcga_features", "params:data_engineering.gene_grouping"],
                ["gene_groups_ppi", "group_sizes_ppi", "grouping_metrics_ppi"],
                name="ppi_gene_groups",
                tags="rna_ppi",
            ),
            Node(
                nodes.chromosome_gene_groups,
                ["gene_table", "params:data_engineering.gene_grouping"],
                ["gene_groups_chromosome", "group_sizes_chromosome", "grouping_metrics_chromosome"],
                name="chromosome_gene_groups",
                tags="rna_ppi",
            ),
            Node(
                nodes.tile_slides,
                ["slide_manifest", "params:data_engineering.tiling", "params:data_engineering.slides", "patch_stores"],
                ["patch_scores", "slide_summary"],
                name="tile_slides",
                tags="slides",
            ),
            Node(
                nodes.build_patch_index,
                ["patch_scores", "slide_manifest", "params:split"],
                ["patch_index", "lineage_split"],
                name="build_patch_index",
                tags="slides",
            ),
            Node(
                nodes.decode_patches,
                ["patch_index", "slide_manifest", "patch_stores", "params:patches"],
                "patch_pixels",
                name="decode_patches",
                tags="slides",
            ),
            Node(
                nodes.slide_qc_thumbnails,
                ["slide_manifest", "patch_scores", "slide_summary", "params:data_engineering.qc"],
                "slide_qc_thumbnails",
                name="slide_qc_thumbnails",
                tags="slides",
            ),
        ],
        tags="data_engineering",
    )

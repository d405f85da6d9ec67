"""The ``real`` environment end to end on real public files (../shared/data), as a user runs it:
the data_engineering RNA + PPI part (nodes tagged ``rna_ppi``) on

* TCGA: the real TCGA-LGG matrix (20,502 symbols x 99 primary tumours, log2 RSEM; columns ``TCGA.XX.XXXX.01``)
  as a one-project "TCGA" matrix without sample sheet (samples and their type from the barcodes);
* annotation: GENCODE v36 (60,660 genes); PPI: the directed, signed OmniPath network (OmniPath complexes);
* cohort: 12 of the same LGG tumours written as a cohort matrix of 12 lineages of 4 patients (there is no
  public xenograft-lineage RNA-seq small enough to ship; the point is the plumbing, not the biology).

Skipped with the reason when ../shared is absent.
"""

from __future__ import annotations

import json

import pandas as pd

from gb_kedro.config import BASELINE_ROWS
from tests.conftest import shared_file
from tests.helpers import base_options, copy_project, kedro_cli


def test_real_environment_runs_rna_and_ppi_part_on_real_files(tmp_path):
    gencode = shared_file("annotation/gencode_v36_genes.tsv")
    lgg = shared_file("rnaseq/tcga_lgg_log2_rsem_symbols.tsv")
    omnipath = shared_file("ppi/omnipath_signed_directed.tsv")
    project = copy_project(tmp_path / "project")

    data = tmp_path / "mine"
    (data / "cohort").mkdir(parents=True)
    matrix = pd.read_csv(lgg, sep="\t")
    cohort = matrix.iloc[:, [0, *range(1, 13)]].copy()
    lineages = [f"L{i:02d}" for i in range(1, 13)]
    cohort.columns = ["gene", *lineages]
    cohort.to_csv(data / "cohort" / "expression.tsv", sep="\t", index=False)
    pd.DataFrame(
        {"sample_id": lineages, "patient_id": [f"P{i // 3 + 1}" for i in range(12)], "lineage_id": lineages}
    ).to_csv(data / "cohort" / "sample_sheet.tsv", sep="\t", index=False)

    params = ",".join(
        [
            f"real_data_dir={data}",
            f"annotation_path={gencode}",
            f"tcga_path={lgg}",
            f"ppi_path={omnipath}",
            "data_engineering.tcga.project=TCGA-LGG",
            "data_engineering.tcga.value_scale=log2p1",
            "data_engineering.cohort.value_scale=log2p1",
        ]
    )
    result = kedro_cli(
        project, "--env", "real", "--pipelines", "data_engineering", "--tags", "rna_ppi", "--params", params
    )
    assert result.returncode == 0, result.stderr[-3000:]

    out = project / "data"
    samples = pd.read_csv(out / "03_primary/tcga_samples.tsv", sep="\t")
    assert len(samples) == 99 and set(samples["sample_type"]) == {"Primary Tumor"}
    assert samples["sample_id"].str.match(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-01$").all()
    assert set(samples["primary_site"]) == {"brain"}
    summary = json.loads((out / "08_reporting/data_engineering_summary.json").read_text())
    assert summary["tcga_samples"] == 99 and summary["cohort_samples"] == 12
    assert summary["genes_harmonised"] > 16_000 and summary["genes_kept"] > 12_000
    features = pd.read_parquet(out / "05_model_input/cohort_features.parquet")
    assert features.shape[0] == 12 and features.columns.str.match(r"^ENSG\d{11}$").all()
    ppi = pd.read_csv(out / "05_model_input/gene_groups_ppi.tsv", sep="\t")
    chrom = pd.read_csv(out / "05_model_input/gene_groups_chromosome.tsv", sep="\t")
    assert ppi["group"].nunique() == chrom["group"].nunique() == 7
    assert ppi["in_ppi"].sum() > 4_000  # OmniPath genes among the kept ones
    metrics = json.loads((out / "08_reporting/grouping_metrics_ppi.json").read_text())
    assert metrics["n_communities"] >= 7 and metrics["qd_raw"] > 0.3
    ppi_summary = json.loads((out / "08_reporting/ppi_summary.json").read_text())
    assert ppi_summary["complex_nodes"] > 200 and "metabolite" in ppi_summary["nodes_dropped_by_reason"]


# Short schedules: the example checks that every stage runs on real files and writes sane outputs, not the science.
SHORT = [
    "rna_encoding.pretrain.epochs=3",
    "rna_encoding.cohort.epochs=2",
    "wsi_encoding.train.epochs=4",
    "wsi_encoding.loss.warmup_epochs=2",
    "multimodal.train.epochs=2",
    "multimodal.retrainings.seeds=2",
    "reporting.morphology_link.n_permutations=10",
    "reporting.survival.n_permutations=100",
]


def test_the_whole_analysis_runs_on_real_files(tmp_path):
    """``kedro run --env real --pipelines analysis`` end to end on a cohort made of real files (tests/real_cohort.py:
    TCGA-LGG as compendium and cohort, GENCODE v36, OmniPath, Hallmark, slides of real H&E and Ki67 IHC pixels), as a
    user runs it; the outputs must be sane, not only present."""
    from tests.real_cohort import LINEAGES, MICE_PER_LINEAGE, build

    shared = shared_file("slides/ki67_ihc_os2_generic_tiled.tif").parents[1]
    paths = build(shared, tmp_path / "mine")
    project = copy_project(tmp_path / "project")
    params = [
        *(f"{k}={v}" for k, v in paths.items()),
        "data_engineering.tcga.project=TCGA-LGG",
        "data_engineering.tcga.value_scale=log2p1",
        "data_engineering.cohort.value_scale=log2p1",
        "data_engineering.tiling.threshold=auto",  # Ki67: nuclear DAB covers a few % of a field
        "data_engineering.gene_grouping.unconnected=coexpression",  # OmniPath leaves most genes without an edge
        f"reporting.enrichment.gmt_paths={shared / 'genesets' / 'h.all.v7.0.symbols.gmt'}",
        *SHORT,
    ]
    result = kedro_cli(project, "--env", "real", "--pipelines", "analysis", "--params", ",".join(params), timeout=900)
    log = result.stdout + result.stderr
    (tmp_path / "kedro-run.log").write_text(log)  # kept by pytest's tmp_path for a look after the run
    assert result.returncode == 0, log[-4000:]
    out = project / "data"
    rep = out / "08_reporting"

    # slides: real pixels at 0.5 um/px resampled to 1 um/px; the cohort's Otsu threshold keeps Ki67 tumour patches
    slides = pd.read_csv(rep / "slide_summary.tsv", sep="\t")
    assert len(slides) == LINEAGES * MICE_PER_LINEAGE and slides["status"].isin(["ok", "no_tumour"]).all()
    assert (slides["status"] == "ok").mean() > 0.75  # a few mice whose crop holds little stained tumour
    assert (slides["read_size"] == 512).all() and (slides["reader"] == "openslide").all()
    assert slides["threshold"].nunique() == 1 and 0 < slides["threshold"].iloc[0] < 0.2
    assert {"brown_p50", "brown_p90", "brown_p99", "brown_max"} <= set(slides.columns)
    assert "tumour patches kept at each threshold" in log and "automatic brown-ratio threshold" in log
    assert "Using '" not in log  # no logging banner from the worker processes
    # PPI groups on a sparse real network: the unconnected genes placed by co-expression, and said so
    grouping = json.loads((rep / "grouping_metrics_ppi.json").read_text())
    assert (
        grouping["genes_without_ppi_edge"] > 5_000
        and grouping["genes_placed_by_coexpression"] == grouping["genes_without_ppi_edge"]
    )
    assert grouping["residual_group_share"] < 0.5
    sizes = pd.read_csv(rep / "group_sizes_ppi.tsv", sep="\t")
    assert len(sizes) == 7 and sizes["n_genes"].max() < 0.6 * sizes["n_genes"].sum()

    # Table 1: every row on every held-out set
    table1 = pd.read_csv(rep / "table1.csv")
    rows = set(base_options("multimodal.table1")["rows"]) | set(BASELINE_ROWS)
    assert len(table1) == len(rows) * 4 and table1["lineage_accuracy"].between(0, 1).all()
    # gene tables: no gene constant across the cohort is ranked, and the null holds the kept genes only
    cohort = pd.read_parquet(out / "05_model_input" / "cohort_features.parquet")
    constant = set(cohort.columns[cohort.max() == cohort.min()])
    assert constant  # real data: genes at 0 in every one of the 8 samples
    link = pd.read_csv(rep / "morphology_link.csv")
    summary = json.loads((rep / "morphology_link_summary.json").read_text())
    assert summary["genes_without_variance"] == len(constant) and summary["n_genes"] == len(link)
    assert not {g.split(".")[0] for g in link["gene_id"]} & constant and link["r2"].max() < 1.0
    assert link["q_value"].min() < 0.99  # a null of kept genes only: q is not pinned at 1
    table2 = pd.read_csv(rep / "table2.csv")
    assert not {g.split(".")[0] for g in table2["gene_id"]} & constant
    # the report: captions count what they describe, no planted-truth section, a verdict above each gene table
    html = (rep / "report.html").read_text()
    gradcam = pd.read_parquet(out / "07_model_output" / "gradcam_patches.parquet")
    assert f"Grad-CAM genes of the {len(gradcam)} held-out patches" in html
    assert "your data (conf/&lt;env&gt;/catalog.yml)" in html or "your data (conf/<env>/catalog.yml)" in html
    assert "Every gene ranking against the planted truth" not in html and "Planted drivers" not in html
    assert html.count('class="verdict"') >= 2 and "No planted truth and no null on this data" in html
    assert "survival_days" in html  # survival skipped, said in the report
    tests = pd.read_csv(rep / "survival_tests.tsv", sep="\t")
    assert tests.empty  # no survival_days column: the analysis is skipped, not fatal
    assert "no survival_days column" in log
    enrichment = pd.read_csv(rep / "enrichment.tsv", sep="\t")
    assert enrichment["gene_set"].str.startswith("HALLMARK_").all()
    # the log's last line says where the results are
    assert "Done: the report is" in result.stdout.strip().splitlines()[-1]

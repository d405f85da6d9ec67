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

from tests.conftest import shared_file
from tests.helpers import copy_project, kedro_cli


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

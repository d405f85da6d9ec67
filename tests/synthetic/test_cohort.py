import numpy as np
import pandas as pd
import pytest

from gb_kedro.datasets import STAR_COLUMNS
from gb_kedro.synthetic.cohort import MORPHOLOGY_AXES, Preset, generate
from tests.helpers import base_options

DEMO_LIKE = Preset.from_dict(
    base_options(
        "synthetic_cohort.presets.demo",
        n_genes=1200,
        n_noncoding=100,
        n_modules=10,
        ppi_mean_degree=8,
        ppi_mu=0.3,
        ppi_absent_fraction=0.05,
        n_tcga_sites=4,
        tcga_samples_per_site=10,
        n_centers=3,
        n_patients=6,
        n_lineages=20,
    )
)


@pytest.fixture(scope="module")
def cohort():
    return generate(DEMO_LIKE, seed=3)


def test_same_seed_same_files(tiny_cohort, tiny_preset):
    again = generate(tiny_preset, seed=7)
    pd.testing.assert_frame_equal(again["cohort_matrix"], tiny_cohort["cohort_matrix"])
    pd.testing.assert_frame_equal(again["kg"], tiny_cohort["kg"])
    assert list(again["tcga_star"]) == list(tiny_cohort["tcga_star"])


def test_real_layouts(tiny_cohort):
    frame = next(iter(tiny_cohort["tcga_star"].values()))
    assert list(frame.columns) == STAR_COLUMNS
    assert set(frame.attrs["summary"]) == {"N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"}
    sheet = tiny_cohort["tcga_sample_sheet"]
    assert {"File Name", "Case ID", "Sample ID", "Project ID", "Sample Type"} <= set(sheet.columns)
    assert sheet["File Name"].str.endswith(".rna_seq.augmented_star_gene_counts.tsv").all()
    assert set(sheet["Project ID"]) >= {"TCGA-GBM", "TCGA-LGG"}
    assert list(tiny_cohort["cohort_sample_sheet"].columns) == [
        "sample_id",
        "patient_id",
        "lineage_id",
        "os_months",
        "pfs_months",
    ]
    annotation = tiny_cohort["annotation"]
    assert annotation["gene_id"].str.endswith("_PAR_Y").sum() == 2
    assert (annotation["gene_type"] != "protein_coding").sum() > 0
    assert {"relation", "x_name", "y_name", "x_type"} <= set(tiny_cohort["kg"].columns)
    assert tiny_cohort["signalling"]["source"].str.contains("_").any()  # complexes, as in OmniPath


def test_lineage_codes(cohort):
    lineages = cohort["truth_lineages"]
    codes = lineages[MORPHOLOGY_AXES].to_numpy()
    assert set(np.unique(codes)) <= {-1, 0, 1}
    assert all(lineages[a].value_counts(normalize=True).iloc[0] <= 0.7 for a in MORPHOLOGY_AXES)  # every axis varies
    distance = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    assert distance[~np.eye(len(codes), dtype=bool)].min() >= 2
    for _, part in lineages.groupby("patient_id"):
        shared = part["shared_axes"].iloc[0].split(",")
        assert len(shared) == 2 and (part[shared].nunique() == 1).all()


def test_drivers_and_decoys(cohort):
    genes = cohort["truth_genes"]
    drivers = genes[genes["role"] == "driver"]
    decoys = genes[genes["role"] == "decoy"]
    assert len(drivers) >= 20 and len(decoys) == len(drivers)
    per_axis = drivers.groupby("axis").size()
    assert per_axis.between(3, 5).all() and len(per_axis) == 6
    assert (drivers.groupby("axis")["module"].nunique() == 1).all()  # each axis inside one PPI module
    effects = cohort["truth_drivers"].pivot_table(index="lineage_id", columns="gene_id", values="log_effect")
    sd_driver = effects[drivers["gene_id"]].std().mean()
    sd_decoy = effects[decoys["gene_id"]].std().mean()
    assert 0.6 < sd_decoy / sd_driver < 1.6  # matched lineage variance


def test_drivers_move_with_their_axis_in_the_cohort_matrix(cohort):
    matrix = cohort["cohort_matrix"].assign(gene_id=lambda f: f["gene_id"].str.split(".").str[0]).set_index("gene_id")
    log = np.log1p(matrix)
    lineages = cohort["truth_lineages"].set_index("lineage_id")
    sheet = cohort["cohort_sample_sheet"].set_index("sample_id")
    truth = cohort["truth_drivers"]
    corr = []
    for gene_id, rows in (
        truth[truth["role"] == "driver"].assign(gene_id=lambda f: f["gene_id"].str.split(".").str[0]).groupby("gene_id")
    ):
        axis = rows["axis"].iloc[0]
        sign = np.sign(rows["log_effect"].to_numpy() @ rows["level"].to_numpy())
        levels = lineages.loc[sheet.loc[log.columns, "lineage_id"], axis].to_numpy()
        corr.append(np.corrcoef(log.loc[gene_id].to_numpy(), sign * levels)[0, 1])
    assert np.mean(corr) > 0.6


def test_outcome_follows_aggressiveness(cohort):
    lineages = cohort["truth_lineages"]
    sheet = cohort["cohort_sample_sheet"]
    per_patient = lineages.groupby("patient_id")["aggressiveness"].mean()
    os_months = sheet.groupby("patient_id")["os_months"].first()
    assert np.corrcoef(per_patient.loc[os_months.index], os_months)[0, 1] < -0.5
    assert (sheet["pfs_months"] < sheet["os_months"]).all()

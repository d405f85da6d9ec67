import numpy as np
import pandas as pd
import pytest

from gb_kedro import expression
from gb_kedro.datasets.table import read_table
from gb_kedro.errors import InputDataError
from tests.helpers import base_options


def matrix_options(**overrides) -> dict:
    """parse_expression_matrix's keyword arguments from conf/base (data_engineering.cohort)."""
    return {**base_options("data_engineering.cohort"), **overrides}


def _frame(data, source="m.tsv"):
    frame = pd.DataFrame(data)
    frame.attrs["source"] = source
    return frame


def test_genes_x_samples_with_ensembl_ids():
    frame = _frame(
        {
            "gene_id": ["ENSG00000000003.15", "ENSG00000000005.6"],
            "gene_name": ["TSPAN6", "TNMD"],
            "S1": [1.0, 2.0],
            "S2": [3.0, 4.0],
        }
    )
    m = expression.parse_expression_matrix(frame, **matrix_options(annotation_columns=["gene_name"]))
    assert m.index.tolist() == ["S1", "S2"]
    assert m.columns.tolist() == ["ENSG00000000003.15", "ENSG00000000005.6"]
    assert m.loc["S2", "ENSG00000000005.6"] == 4.0


def test_samples_x_genes_detected_from_the_header():
    frame = _frame({"sample": ["S1", "S2"], "ENSG00000000003.15": [1.0, 2.0], "ENSG00000000005.6": [3.0, 4.0]})
    m = expression.parse_expression_matrix(frame, **matrix_options())
    assert m.index.tolist() == ["S1", "S2"]
    assert m.loc["S1", "ENSG00000000005.6"] == 3.0


def test_duplicate_sample_ids():
    frame = _frame({"sample": ["S1", "S1"], "ENSG00000000003.15": [1.0, 2.0]})
    with pytest.raises(InputDataError, match=r"m\.tsv: duplicate sample ID 'S1'"):
        expression.parse_expression_matrix(frame, **matrix_options())


def test_nan_values():
    frame = _frame({"gene_id": ["ENSG00000000003.15"], "S1": [np.nan], "S2": [1.0]})
    with pytest.raises(InputDataError, match=r"m\.tsv: 1 missing or non-numeric value\(s\), e\.g\. sample 'S1'"):
        expression.parse_expression_matrix(frame, **matrix_options())


def test_negative_values_in_a_linear_matrix():
    frame = _frame({"gene_id": ["ENSG00000000003.15"], "S1": [-1.0], "S2": [1.0]})
    with pytest.raises(InputDataError, match=r"m\.tsv: 1 negative value\(s\) in a linear-scale matrix"):
        expression.parse_expression_matrix(frame, **matrix_options())
    assert expression.parse_expression_matrix(frame, **matrix_options(value_scale="log2p1")).loc["S1"].iloc[0] == -1.0


def test_sample_sheet_must_match_the_matrix():
    matrix = expression.parse_expression_matrix(
        _frame({"gene_id": ["ENSG00000000003.15"], "S1": [1.0], "S2": [2.0]}), **matrix_options()
    )
    sheet = _frame(
        {"sample_id": ["S1", "S3"], "patient_id": ["P1", "P1"], "lineage_id": ["L1", "L2"]}, source="sheet.tsv"
    )
    with pytest.raises(
        InputDataError,
        match=r"sheet\.tsv: sample IDs do not match the columns of m\.tsv: 1 only in the sheet \(e\.g\. \['S3'\]\), 1 only in the matrix \(e\.g\. \['S2'\]\)",
    ):
        expression.validate_cohort_samples(matrix, sheet)
    dup = _frame(
        {"sample_id": ["S1", "S1"], "patient_id": ["P1", "P1"], "lineage_id": ["L1", "L2"]}, source="sheet.tsv"
    )
    with pytest.raises(InputDataError, match=r"sheet\.tsv: duplicate sample_id 'S1'"):
        expression.validate_cohort_samples(matrix, dup)


def test_no_gene_left_after_harmonisation(tiny_genes):
    tcga = _frame({"ENSG00000000003.15": [1.0]}, source="tcga.parquet")
    cohort = _frame({"ENSG00000000005.6": [1.0]}, source="cohort.tsv")
    with pytest.raises(InputDataError, match=r"tcga\.parquet \+ cohort\.tsv: no gene left after harmonisation"):
        expression.harmonise_genes(
            tcga, cohort, tiny_genes, ["protein_coding"], pd.DataFrame(columns=["gene", "stage", "reason"])
        )


def test_harmonisation_keeps_common_protein_coding_genes(tiny_cohort, tiny_genes):
    pc = tiny_genes[tiny_genes["gene_type"] == "protein_coding"]
    nc = tiny_genes[tiny_genes["gene_type"] != "protein_coding"]
    v = pc["gene_id_versioned"].tolist()
    tcga = pd.DataFrame(
        np.ones((2, 4)), columns=[v[0], v[1], v[2], nc["gene_id_versioned"].iloc[0]], index=["T1", "T2"]
    )
    cohort = pd.DataFrame(
        np.ones((1, 3)), columns=[pc["symbol"].iloc[0], v[1].split(".")[0] + ".99", v[3]], index=["C1"]
    )
    t, c, table, dropped = expression.harmonise_genes(
        tcga, cohort, tiny_genes, ["protein_coding"], pd.DataFrame(columns=["gene", "stage", "reason"])
    )
    assert t.columns.tolist() == c.columns.tolist() == table["gene_id"].tolist()
    assert set(table["gene_id"]) == {pc["gene_id"].iloc[0], pc["gene_id"].iloc[1]}
    assert set(dropped["reason"]) >= {"only in TCGA", "only in the cohort", "gene_type not in ['protein_coding']"}


def test_log_scales_agree():
    x = pd.DataFrame({"g": [0.0, 1.0, 15.0]})
    np.testing.assert_allclose(
        expression.to_log1p(x, "linear"), expression.to_log1p(np.log2(x + 1), "log2p1"), rtol=1e-6
    )


def test_variance_filter_keeps_genes_variable_in_either_matrix():
    rng = np.random.default_rng(0)
    tcga = pd.DataFrame(rng.normal(size=(50, 4)) * [1, 0.01, 0.01, 1], columns=list("abcd"))
    cohort = pd.DataFrame(rng.normal(size=(10, 4)) * [0.01, 1, 0.01, 1], columns=list("abcd"))
    kept, table = expression.variance_filter({"tcga": tcga, "cohort": cohort}, quantile=0.5, min_variance=0.0)
    assert kept == ["a", "b", "d"]


def test_zscore_is_fit_on_tcga_and_applied_to_the_cohort():
    tcga = pd.DataFrame({"g": [1.0, 3.0]})
    stats = expression.fit_zscore(tcga)
    np.testing.assert_allclose(expression.apply_zscore(pd.DataFrame({"g": [2.0, 5.0]}), stats)["g"], [0.0, 3.0])


def test_real_tcga_lgg_matrix_by_symbol(gencode, shared):
    genes, _ = gencode
    frame = read_table(shared("rnaseq/tcga_lgg_log2_rsem_symbols.tsv"))
    m = expression.parse_expression_matrix(frame, **matrix_options(value_scale="log2p1"), genes=genes)
    assert m.shape[0] == 99 and m.shape[1] > 20_000
    assert m.index[0].startswith("TCGA.")
    mapped, dropped = expression.map_columns_to_genes(m, genes, "tcga")
    assert mapped.shape[1] > 17_000  # most symbols map to a GENCODE v36 gene
    assert mapped.columns.str.match(r"^ENSG\d{11}$").all()
    assert dropped["reason"].str.startswith("symbol not in the gene annotation").sum() > 0


def test_a_log_scaled_matrix_read_as_linear_stops_naming_the_parameter(shared):
    """The real TCGA-LGG log2 RSEM matrix (values up to ~21) read with value_scale linear: one line naming the file
    and the parameter to set; and a linear matrix read as log2p1 likewise."""
    frame = read_table(shared("rnaseq/tcga_lgg_log2_rsem_symbols.tsv"))
    with pytest.raises(
        InputDataError,
        match=r"tcga_lgg_log2_rsem_symbols\.tsv: the values look log-scaled \(largest 2\d\.\d.*set "
        r"data_engineering\.tcga\.value_scale: log2p1",
    ):
        expression.parse_expression_matrix(
            frame, **matrix_options(value_scale="linear"), scale_key="data_engineering.tcga.value_scale"
        )
    linear = frame.set_index("gene_name").pow(2).reset_index()  # back to the linear scale: values in the millions
    linear.attrs["source"] = "linear.tsv"
    with pytest.raises(InputDataError, match=r"linear\.tsv: the values look linear .* set value_scale: linear"):
        expression.parse_expression_matrix(linear, **matrix_options(value_scale="log2p1"))

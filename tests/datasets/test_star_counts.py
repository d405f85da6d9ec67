import numpy as np
import pandas as pd
import pytest

from gb_kedro.datasets import STAR_COLUMNS, StarCountsDataset
from gb_kedro.datasets.star_counts import read_star_counts, write_star_counts
from gb_kedro.errors import InputDataError

GDC_TEXT = (
    "# gene-model: GENCODE v36\n"
    "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\ttpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded\n"
    "N_unmapped\t\t\t2112812\t2112812\t2112812\t\t\t\n"
    "N_multimapping\t\t\t3125472\t3125472\t3125472\t\t\t\n"
    "N_noFeature\t\t\t1543085\t30201357\t30183298\t\t\t\n"
    "N_ambiguous\t\t\t3412543\t86934\t90053\t\t\t\n"
    "ENSG00000000003.15\tTSPAN6\tprotein_coding\t2843\t1424\t1419\t31.0185\t12.3434\t11.6543\n"
    "ENSG00000000005.6\tTNMD\tprotein_coding\t2\t2\t0\t0.0552\t0.0220\t0.0207\n"
    "ENSG00000000419.13\tDPM1\tprotein_coding\t1698\t849\t849\t63.2156\t25.1553\t23.7507\n"
)


def test_reads_the_exact_gdc_layout(tmp_path):
    path = tmp_path / "a.rna_seq.augmented_star_gene_counts.tsv"
    path.write_text(GDC_TEXT)
    genes = StarCountsDataset(str(path)).load()
    assert list(genes.columns) == STAR_COLUMNS
    assert genes["gene_id"].tolist() == ["ENSG00000000003.15", "ENSG00000000005.6", "ENSG00000000419.13"]
    assert genes.loc[2, "tpm_unstranded"] == pytest.approx(63.2156)
    assert genes.attrs["source"] == str(path)


def test_write_then_read_round_trips_and_keeps_the_layout(tmp_path):
    path = tmp_path / "b.tsv"
    genes = read_star_counts(_write(tmp_path / "src.tsv", GDC_TEXT))
    genes.attrs["summary"] = {"N_unmapped": 5, "N_multimapping": 6, "N_noFeature": 7, "N_ambiguous": 8}
    write_star_counts(genes, path, summary=genes.attrs["summary"])
    lines = path.read_text().splitlines()
    assert lines[0] == "# gene-model: GENCODE v36"
    assert lines[1].split("\t") == STAR_COLUMNS
    assert [line.split("\t")[0] for line in lines[2:6]] == [
        "N_unmapped",
        "N_multimapping",
        "N_noFeature",
        "N_ambiguous",
    ]
    again = read_star_counts(path)
    np.testing.assert_allclose(again["tpm_unstranded"], genes["tpm_unstranded"], atol=1e-4)
    assert (again["unstranded"] == genes["unstranded"]).all()


def test_wrong_header_names_the_file(tmp_path):
    path = _write(tmp_path / "bad.tsv", GDC_TEXT.replace("tpm_unstranded", "TPM"))
    with pytest.raises(InputDataError, match=r"bad\.tsv: not a GDC STAR-counts file: expected the header"):
        read_star_counts(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputDataError, match=r"nope\.tsv: file not found"):
        read_star_counts(tmp_path / "nope.tsv")


@pytest.mark.parametrize(("value", "message"), [("NaN", "missing or non-numeric"), ("-3", "negative value")])
def test_nan_or_negative_values(tmp_path, value, message):
    path = _write(tmp_path / "v.tsv", GDC_TEXT.replace("\t2843\t", f"\t{value}\t"))
    with pytest.raises(InputDataError, match=rf"v\.tsv: column 'unstranded' has a {message}.*ENSG00000000003\.15"):
        read_star_counts(path)


def test_failed_save_leaves_the_previous_file(tmp_path):
    path = _write(tmp_path / "keep.tsv", GDC_TEXT)
    broken = pd.DataFrame({"gene_id": ["x"]})
    with pytest.raises(ValueError, match="missing columns"):
        write_star_counts(broken, path)
    assert path.read_text() == GDC_TEXT
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tsv"]


def _write(path, text):
    path.write_text(text)
    return path

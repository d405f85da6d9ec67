import pandas as pd
import pytest

from gb_kedro.errors import InputDataError
from gb_kedro.genes import looks_like_ensembl, prepare_annotation, strip_version, to_stripped_ids


def test_strip_version():
    assert strip_version("ENSG00000198964.14") == "ENSG00000198964"
    assert strip_version("ENSG00000198964") == "ENSG00000198964"
    assert strip_version("ENSG00000182378.14_PAR_Y") == "ENSG00000182378_PAR_Y"


def test_looks_like_ensembl():
    assert looks_like_ensembl(["ENSG00000198964.14", "ENSG00000000003"])
    assert not looks_like_ensembl(["SGMS1", "TP53"])


def test_real_gencode_par_y_collisions_are_dropped(gencode):
    genes, dropped = gencode
    assert len(dropped) == 44  # GENCODE v36 has 44 _PAR_Y IDs
    assert dropped["gene"].str.endswith("_PAR_Y").all()
    assert genes["gene_id"].is_unique
    assert (genes["gene_type"] == "protein_coding").sum() > 19_900
    row = genes.set_index("gene_id").loc["ENSG00000198964"]
    assert (row["gene_id_versioned"], row["symbol"]) == ("ENSG00000198964.14", "SGMS1")
    # The chrX copy of a PAR gene is kept.
    assert genes.set_index("gene_id").loc["ENSG00000182378", "chrom"] == "chrX"


def test_mapping_by_version_symbol_and_par(gencode):
    genes, _ = gencode
    mapped, how = to_stripped_ids(["ENSG00000198964.99", "SGMS1", "ENSG00000182378.14_PAR_Y", "NOT_A_GENE"], genes)
    assert mapped.tolist()[:2] == ["ENSG00000198964", "ENSG00000198964"]
    assert how.tolist() == ["ensembl", "symbol", "par_y", "unmapped"]


def test_annotation_without_required_columns():
    frame = pd.DataFrame({"gene_id": ["ENSG00000000003.1"]})
    frame.attrs["source"] = "genes.tsv"
    with pytest.raises(InputDataError, match=r"genes\.tsv: not a GENCODE gene table: missing column"):
        prepare_annotation(frame)

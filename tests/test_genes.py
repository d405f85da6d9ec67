import pandas as pd
import pytest

from gb_kedro.errors import InputDataError
from gb_kedro.genes import (
    gene_like_fraction,
    looks_like_ensembl,
    normalise_chrom,
    normalise_gene_type,
    prepare_annotation,
    prepare_history,
    strip_version,
    to_stripped_ids,
)


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
    mapped, how, reason = to_stripped_ids(
        ["ENSG00000198964.99", "SGMS1", "ENSG00000182378.14_PAR_Y", "NOT_A_GENE"], genes
    )
    assert mapped.tolist()[:2] == ["ENSG00000198964", "ENSG00000198964"]
    assert how.tolist() == ["ensembl", "symbol", "par_y", "unmapped"]
    assert reason[3] == "symbol not in the gene annotation (no symbol-history table given to map it)"


def test_annotation_without_required_columns():
    frame = pd.DataFrame({"gene_id": ["ENSG00000000003.1"]})
    frame.attrs["source"] = "genes.tsv"
    with pytest.raises(InputDataError, match=r"genes\.tsv: not a GENCODE gene table: missing column"):
        prepare_annotation(frame)


# An Ensembl BioMart export (NCBI/Ensembl chromosome names, other gene-type spellings).
BIOMART = pd.DataFrame(
    {
        "Gene stable ID": [
            "ENSG00000141510",
            "ENSG00000146648",
            "ENSG00000198888",
            "ENSG00000012048",
            "ENSG00000000001",
        ],
        "Gene name": ["TP53", "EGFR", "MT-ND1", "BRCA1", "LINC1"],
        "Gene type": ["protein-coding", "protein-coding gene", "protein_coding", "protein_coding", "lncRNA"],
        "Chromosome/scaffold name": ["17", "chr7", "MT", "17", "X"],
        "Gene start (bp)": [7661779, 55019017, 3307, 43044295, 1],
        "Gene end (bp)": [7687538, 55211628, 4262, 43125483, 2],
    }
)

# The HGNC complete set (hgnc_complete_set.txt) layout: tab-separated, multi-valued fields quoted and "|"-joined.
HGNC_TEXT = (
    "hgnc_id\tsymbol\tname\tlocus_group\tlocus_type\tstatus\tlocation\talias_symbol\tprev_symbol\tentrez_id\tensembl_gene_id\n"
    'HGNC:11998\tTP53\ttumor protein p53\tprotein-coding gene\tgene with protein product\tApproved\t17p13.1\t"p53|LFS1"\t\t7157\tENSG00000141510\n'
    'HGNC:3236\tEGFR\tepidermal growth factor receptor\tprotein-coding gene\tgene with protein product\tApproved\t7p11.2\t"ERBB|SHARED"\tERBB1\t1956\tENSG00000146648\n'
    'HGNC:1100\tBRCA1\tBRCA1 DNA repair associated\tprotein-coding gene\tgene with protein product\tApproved\t17q21.31\t"RNF53|SHARED"\t\t672\tENSG00000012048\n'
    "HGNC:7455\tMT-ND1\tNADH dehydrogenase 1\tprotein-coding gene\tgene with protein product\tApproved\tmitochondria\t\tMTND1\t4535\tENSG00000198888\n"
)


@pytest.fixture
def biomart_genes():
    genes, _ = prepare_annotation(BIOMART)
    return genes


@pytest.fixture
def hgnc_history(tmp_path, biomart_genes):
    from gb_kedro.datasets.table import read_table

    path = tmp_path / "hgnc_complete_set.txt"
    path.write_text(HGNC_TEXT)
    return prepare_history(read_table(path), biomart_genes)


def test_biomart_columns_chromosomes_and_gene_types_are_normalised(biomart_genes):
    assert biomart_genes["chrom"].tolist() == ["chr17", "chr7", "chrM", "chr17", "chrX"]
    assert biomart_genes["gene_type"].tolist()[:4] == ["protein_coding"] * 4
    assert normalise_chrom("chrMT") == "chrM" and normalise_chrom("GL000009.2") == "GL000009.2"
    assert normalise_gene_type("gene with protein product") == "protein_coding"


def test_rsem_entrez_and_history_identifiers(biomart_genes, hgnc_history):
    ids = [
        "TP53|7157",
        "?|1956",
        "1956",
        "ERBB1|99999",
        "p53",
        "SHARED",
        "MTND1",
        "NOPE|123",
        "4535",
        "ENSG00000099999.1",
    ]
    mapped, how, reason = to_stripped_ids(ids, biomart_genes, hgnc_history)
    assert mapped.tolist()[:5] == [
        "ENSG00000141510",
        "ENSG00000146648",
        "ENSG00000146648",
        "ENSG00000146648",
        "ENSG00000141510",
    ]
    assert how.tolist()[:5] == ["symbol", "entrez", "entrez", "previous_symbol", "alias_symbol"]
    assert pd.isna(mapped[5]) and reason[5].startswith("ambiguous: alias symbol of 2 genes")
    assert (mapped[6], how[6]) == ("ENSG00000198888", "previous_symbol")
    assert pd.isna(mapped[7]) and "neither the symbol nor the Entrez ID" in reason[7]
    assert (mapped[8], how[8]) == ("ENSG00000198888", "entrez")
    assert reason[9] == "Ensembl ID not in the gene annotation"
    # without the history, Entrez IDs cannot map and say why
    mapped, how, reason = to_stripped_ids(["?|1956", "TP53|7157"], biomart_genes)
    assert pd.isna(mapped[0]) and "no symbol-history table" in reason[0]
    assert mapped[1] == "ENSG00000141510"


def test_gene_like_fraction_tells_gene_axes(biomart_genes, hgnc_history):
    assert gene_like_fraction(["TP53", "EGFR"], biomart_genes) == 1.0
    assert gene_like_fraction(["A1BG|1", "ZZZ3|26009"]) == 1.0
    assert gene_like_fraction(["7157", "1956"], biomart_genes, hgnc_history) == 1.0
    assert gene_like_fraction(["S1", "S2"], biomart_genes, hgnc_history) == 0.0

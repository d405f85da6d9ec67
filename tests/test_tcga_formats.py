"""TCGA expression in the forms researchers download it, each written in its exact real layout:
RSEM RNASeqV2 (samples x ``SYMBOL|ENTREZ``), UCSC Xena (Ensembl IDs x barcodes), GDC HTSeq folders with the
GDC sample sheet, GDC STAR folders; and the one-line refusals."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from gb_kedro.datasets.table import read_table
from gb_kedro.datasets.tcga import TcgaDownloadDataset
from gb_kedro.errors import InputDataError
from gb_kedro.genes import prepare_annotation, prepare_history
from gb_kedro.pipelines.data_engineering import nodes
from tests.helpers import base_options

# Six annotated genes (GENCODE layout) and their HGNC rows.
GENES = pd.DataFrame(
    {
        "gene_id": [
            "ENSG00000121410.12",
            "ENSG00000148584.15",
            "ENSG00000141510.18",
            "ENSG00000146648.19",
            "ENSG00000012048.23",
            "ENSG00000171862.11",
        ],
        "gene_name": ["A1BG", "A1CF", "TP53", "EGFR", "BRCA1", "PTEN"],
        "gene_type": ["protein_coding"] * 6,
        "chrom": ["chr19", "chr10", "chr17", "chr7", "chr17", "chr10"],
        "start": [1, 2, 3, 4, 5, 6],
        "end": [10, 20, 30, 40, 50, 60],
    }
)
HGNC = pd.DataFrame(
    {
        "symbol": ["A1BG", "A1CF", "TP53", "EGFR", "BRCA1", "PTEN"],
        "prev_symbol": [None, "ACF", None, "ERBB1", None, None],
        "alias_symbol": [None, None, "p53", "ERBB", "RNF53", "MMAC1"],
        "entrez_id": [1, 29974, 7157, 1956, 672, 5728],
        "ensembl_gene_id": [g.split(".")[0] for g in GENES["gene_id"]],
    }
)
STRIPPED = [g.split(".")[0] for g in GENES["gene_id"]]


@pytest.fixture
def annotation():
    genes, _ = prepare_annotation(GENES)
    return genes, prepare_history(HGNC, genes)


def tcga_options(**overrides) -> dict:
    return base_options("data_engineering.tcga", **overrides)


def few(**overrides) -> dict:
    """Thresholds small enough for these few-sample files."""
    return base_options("data_engineering.minimums", **{"tcga_samples": 2, **overrides})


def _read(path, annotation, sheet=None, **options):
    genes, history = annotation
    download = TcgaDownloadDataset(str(path)).load()
    if sheet is None:
        sheet = pd.DataFrame()
        sheet.attrs.update(source=str(path.parent / "gdc_sample_sheet.tsv"), missing=True)
    return nodes.assemble_tcga(download, sheet, genes, history, tcga_options(**options), few())


def test_rsem_samples_x_symbol_entrez_with_barcodes(tmp_path, annotation):
    """RTCGA / TCGA RNASeqV2 export: one row per aliquot barcode, columns SYMBOL|ENTREZ (``?`` unknown symbol)."""
    header = ["bcr_patient_barcode", "?|1", "A1CF|29974", "TP53|7157", "ERBB1|1956", "BRCA1|672", "?|100130426"]
    rows = [
        ["TCGA-02-0001-01C-01R-0177-01", 1.5, 2.0, 3.0, 4.0, 5.0, 0.0],
        ["TCGA-02-0003-01A-01R-0177-01", 2.5, 3.0, 4.0, 5.0, 6.0, 0.0],
        ["TCGA-06-0124-11A-01R-1849-01", 9.0, 9.0, 9.0, 9.0, 9.0, 0.0],  # solid tissue normal
        ["TCGA-06-0125-01A-01R-1849-01", 3.5, 4.0, 5.0, 6.0, 7.0, 0.0],
    ]
    path = tmp_path / "GBM.rnaseq.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\t".join(header) + "\n" + "\n".join("\t".join(map(str, r)) for r in rows) + "\n")
    matrix, samples, dropped = _read(path, annotation, project="TCGA-GBM")
    assert matrix.index.tolist() == ["TCGA-02-0001-01C", "TCGA-02-0003-01A", "TCGA-06-0125-01A"]
    assert samples["case_id"].tolist() == ["TCGA-02-0001", "TCGA-02-0003", "TCGA-06-0125"]
    assert set(samples["primary_site"]) == {"brain"} and set(samples["sample_type"]) == {"Primary Tumor"}
    assert dropped[["sample_id", "sample_type"]].values.tolist() == [["TCGA-06-0124-11A", "Solid Tissue Normal"]]
    # the gene columns keep their identifiers; harmonisation maps them (Entrez for "?", previous symbol ERBB1)
    genes, history = annotation
    from gb_kedro.expression import map_columns_to_genes

    mapped, lost = map_columns_to_genes(matrix, genes, "tcga", history)
    assert mapped.columns.tolist() == [STRIPPED[0], STRIPPED[1], STRIPPED[2], STRIPPED[3], STRIPPED[4]]
    assert mapped.loc["TCGA-02-0001-01C", STRIPPED[0]] == 1.5
    assert lost["gene"].tolist() == ["?|100130426"] and "Entrez ID not in the symbol history" in lost["reason"][0]


def test_xena_genes_x_samples_with_ensembl_ids_and_a_simple_sheet(tmp_path, annotation):
    """UCSC Xena GDC hub: ``Ensembl_ID`` (versioned) down the rows, sample barcodes across, log2(x+1)."""
    matrix_text = (
        "Ensembl_ID\tTCGA-CS-4938-01B\tTCGA-CS-4941-01A\tTCGA-CS-4942-02A\n"
        "ENSG00000121410.11\t1.0\t2.0\t3.0\n"
        "ENSG00000141510.16\t4.0\t5.0\t6.0\n"
        "ENSG00000146648.15\t7.0\t8.0\t9.0\n"
    )
    path = tmp_path / "TCGA-LGG.htseq_fpkm-uq.tsv"
    path.write_text(matrix_text)
    sheet = pd.DataFrame(
        {"sample_id": ["TCGA-CS-4938-01B", "TCGA-CS-4941-01A", "TCGA-CS-4942-02A"], "project_id": ["TCGA-LGG"] * 3}
    )
    matrix, samples, dropped = _read(path, annotation, sheet=sheet, value_scale="log2p1")
    assert matrix.shape == (2, 3) and matrix.columns[0] == "ENSG00000121410.11"
    assert matrix.loc["TCGA-CS-4941-01A", "ENSG00000146648.15"] == 8.0
    assert dropped["sample_type"].tolist() == ["Recurrent Tumor"]
    # the same file transposed (samples x genes) reads the same without a parameter
    flipped = tmp_path / "flipped.csv"
    read_table(path).set_index("Ensembl_ID").T.rename_axis("sample").reset_index().to_csv(flipped, index=False)
    again, _, _ = _read(flipped, annotation, sheet=sheet, value_scale="log2p1")
    pd.testing.assert_frame_equal(again, matrix, check_names=False)


def test_symbol_matrix_orientation_from_symbols_both_ways(tmp_path, annotation):
    """A symbol matrix whose samples are not barcodes: the symbol axis is told from the annotation."""
    genes, history = annotation
    from gb_kedro import expression

    frame = pd.DataFrame({"gene": ["A1BG", "TP53", "p53x", "EGFR"], "mouseA": [1.0, 2, 3, 4], "mouseB": [5.0, 6, 7, 8]})
    opts = base_options("data_engineering.cohort")
    down = expression.parse_expression_matrix(frame, **opts, genes=genes, history=history)
    across = expression.parse_expression_matrix(
        frame.set_index("gene").T.rename_axis("id").reset_index(), **opts, genes=genes, history=history
    )
    assert down.index.tolist() == across.index.tolist() == ["mouseA", "mouseB"]
    pd.testing.assert_frame_equal(down, across, check_names=False)
    with pytest.raises(InputDataError, match="cannot tell which axis holds the genes"):
        expression.parse_expression_matrix(
            pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]}), **opts, genes=genes, history=history
        )


def _gdc_htseq_download(root, kinds=("htseq.counts.gz", "FPKM-UQ.txt.gz")):
    """A GDC legacy HTSeq download: <file_id>/<file_id>.<kind> per sample and kind, plus the GDC sample sheet."""
    rng = np.random.default_rng(0)
    rows = []
    samples = [
        ("TCGA-06-0125-01A", "Primary Tumor"),
        ("TCGA-06-0129-01A", "Primary Tumor"),
        ("TCGA-06-0129-11A", "Solid Tissue Normal"),
    ]
    for i, (sample, sample_type) in enumerate(samples):
        for kind in kinds:
            file_id = f"{i:08d}-{kind[:4].lower().replace('.', '')}-4000-8000-000000000000"
            name = f"{file_id}.{kind}"
            counts = kind.startswith("htseq")
            values = rng.integers(0, 500, len(GENES)) if counts else rng.uniform(0, 1e5, len(GENES)).round(3)
            body = "".join(f"{g}\t{v}\n" for g, v in zip(GENES["gene_id"], values, strict=True))
            if counts:
                body += "__no_feature\t1000\n__ambiguous\t20\n__too_low_aQual\t0\n__not_aligned\t0\n__alignment_not_unique\t5\n"
            (root / file_id).mkdir(parents=True)
            with gzip.open(root / file_id / name, "wt") as handle:
                handle.write(body)
            data_type = "Gene Expression Quantification"
            rows.append(
                [file_id, name, "Transcriptome Profiling", data_type, "TCGA-GBM", sample[:12], sample, sample_type]
            )
    sheet = pd.DataFrame(
        rows,
        columns=[
            "File ID",
            "File Name",
            "Data Category",
            "Data Type",
            "Project ID",
            "Case ID",
            "Sample ID",
            "Sample Type",
        ],
    )
    return sheet


def test_gdc_htseq_folder_with_its_sample_sheet(tmp_path, annotation):
    folder = tmp_path / "htseq"
    sheet = _gdc_htseq_download(folder)
    sheet_path = tmp_path / "gdc_sample_sheet.tsv"
    sheet.to_csv(sheet_path, sep="\t", index=False)
    matrix, samples, dropped = _read(folder, annotation, sheet=read_table(sheet_path), htseq_values="counts")
    assert matrix.index.tolist() == ["TCGA-06-0125-01A", "TCGA-06-0129-01A"]
    assert matrix.columns.tolist() == GENES["gene_id"].tolist()  # HTSeq "__" rows dropped
    first = pd.read_csv(next(folder.rglob("00000000-*.htseq.counts.gz")), sep="\t", header=None, index_col=0)[1]
    np.testing.assert_array_equal(matrix.iloc[0].to_numpy(), first.iloc[: len(GENES)].to_numpy(np.float32))
    assert samples["file_name"].str.endswith(".htseq.counts.gz").all()
    assert dropped["sample_type"].tolist() == ["Solid Tissue Normal"]
    uq, _, _ = _read(folder, annotation, sheet=read_table(sheet_path), htseq_values="fpkm_uq")
    assert not np.allclose(uq.to_numpy(), matrix.to_numpy())


def test_star_folder_is_detected_and_the_default_run_layout_still_reads(tmp_path, tiny_cohort):
    dataset = TcgaDownloadDataset(str(tmp_path / "star_counts"))
    dataset.save(dict(tiny_cohort["tcga_star"]))
    download = dataset.load()
    assert download.detect_format() == "star_folder"
    assert len(download.star_files()) == len(tiny_cohort["tcga_sample_sheet"])


def test_empty_or_foreign_folder_is_one_line(tmp_path, annotation):
    empty = tmp_path / "star_counts"
    empty.mkdir()
    (empty / "MANIFEST.txt").write_text("id\tfilename\n")
    with pytest.raises(InputDataError, match=r"star_counts: no TCGA expression file in this folder"):
        _read(empty, annotation)


def test_folder_without_its_sample_sheet_names_the_sheet(tmp_path, annotation):
    folder = tmp_path / "htseq"
    _gdc_htseq_download(folder)
    with pytest.raises(InputDataError, match=r"gdc_sample_sheet\.tsv: not found: a GDC STAR/HTSeq folder needs"):
        _read(folder, annotation)


def test_too_few_samples_and_a_matrix_without_project_are_refused(tmp_path, annotation):
    path = tmp_path / "lgg.tsv"
    path.write_text("gene\tTCGA-CS-4938-01A\tTCGA-CS-4941-01A\nTP53\t1\t2\nEGFR\t3\t4\n")
    genes, history = annotation
    download = TcgaDownloadDataset(str(path)).load()
    missing = pd.DataFrame()
    missing.attrs.update(source="sheet.tsv", missing=True)
    with pytest.raises(InputDataError, match=r"lgg\.tsv: a TCGA matrix without a sample sheet needs its project"):
        nodes.assemble_tcga(download, missing, genes, history, tcga_options(), few())
    with pytest.raises(
        InputDataError,
        match=r"lgg\.tsv: 2 TCGA samples, fewer than the 20 needed \(data_engineering\.minimums\.tcga_samples\)",
    ):
        nodes.assemble_tcga(download, missing, genes, history, tcga_options(project="TCGA-LGG"), few(tcga_samples=20))


def test_sample_ids_are_sample_barcodes_with_or_without_a_sheet(tmp_path, annotation):
    """The same RSEM matrix of aliquot barcodes gives the same sample IDs (``TCGA-02-0001-01C``) whether a sample
    table is given or not; the matrix's own labels stay in ``barcode``."""
    header = ["bcr_patient_barcode", "A1CF|29974", "TP53|7157"]
    rows = [["TCGA-02-0001-01C-01R-0177-01", 2.0, 3.0], ["TCGA-02-0003-01A-01R-0177-01", 3.0, 4.0]]
    path = tmp_path / "GBM.rnaseq.tsv"
    path.write_text("\t".join(header) + "\n" + "\n".join("\t".join(map(str, r)) for r in rows) + "\n")
    without, samples_without, _ = _read(path, annotation, project="TCGA-GBM")
    sheet = pd.DataFrame({"sample_id": [r[0] for r in rows], "project_id": "TCGA-GBM"})
    sheet.attrs["source"] = "samples.tsv"
    with_sheet, samples_with, _ = _read(path, annotation, sheet=sheet)
    assert without.index.tolist() == with_sheet.index.tolist() == ["TCGA-02-0001-01C", "TCGA-02-0003-01A"]
    assert samples_with["barcode"].tolist() == samples_without["barcode"].tolist() == [r[0] for r in rows]


def test_a_counts_only_htseq_download_names_the_parameter_and_the_files_there(tmp_path, annotation):
    folder = tmp_path / "htseq"
    sheet = _gdc_htseq_download(folder, kinds=("htseq.counts.gz",))
    with pytest.raises(
        InputDataError,
        match=r"no HTSeq fpkm_uq file .* it holds 3 counts file\(s\) \(\*\.htseq\.counts.*\): set "
        r"data_engineering\.tcga\.htseq_values to counts",
    ):
        _read(folder, annotation, sheet=sheet, htseq_values="fpkm_uq")

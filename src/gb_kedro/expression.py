"""Expression data: TCGA downloads (GDC STAR or HTSeq folders, matrices) and cohort matrices in,
harmonised normalised matrices out.

Convention: every matrix handed between nodes is **samples x genes** (index = sample ID, columns = gene
identifiers); gene columns are stripped Ensembl IDs once harmonised.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gb_kedro.datasets.star_counts import STAR_COLUMNS, read_star_counts
from gb_kedro.datasets.table import checked_sheet, no_duplicates, read_table
from gb_kedro.datasets.tcga import HTSEQ_KINDS, TcgaDownload, read_htseq
from gb_kedro.errors import InputDataError, source_of
from gb_kedro.genes import gene_like_fraction, to_stripped_ids

logger = logging.getLogger(__name__)

GDC_SHEET_COLUMNS = ["File Name", "Case ID", "Sample ID", "Project ID", "Sample Type"]
COHORT_SHEET_COLUMNS = ["sample_id", "patient_id", "lineage_id"]

# Primary site of the TCGA projects (GDC "primary_site"); projects not listed keep their project ID.
TCGA_PRIMARY_SITE = {
    "TCGA-GBM": "brain",
    "TCGA-LGG": "brain",
    "TCGA-BRCA": "breast",
    "TCGA-LUAD": "lung",
    "TCGA-LUSC": "lung",
    "TCGA-KIRC": "kidney",
    "TCGA-KIRP": "kidney",
    "TCGA-KICH": "kidney",
    "TCGA-PRAD": "prostate",
    "TCGA-COAD": "colorectal",
    "TCGA-READ": "colorectal",
    "TCGA-BLCA": "bladder",
    "TCGA-SKCM": "skin",
    "TCGA-LIHC": "liver",
    "TCGA-STAD": "stomach",
    "TCGA-THCA": "thyroid",
    "TCGA-OV": "ovary",
    "TCGA-UCEC": "uterus",
    "TCGA-HNSC": "head_and_neck",
    "TCGA-PAAD": "pancreas",
    "TCGA-SARC": "soft_tissue",
    "TCGA-LAML": "blood",
    "TCGA-ESCA": "esophagus",
    "TCGA-CESC": "cervix",
    "TCGA-TGCT": "testis",
    "TCGA-PCPG": "adrenal_gland",
    "TCGA-ACC": "adrenal_gland",
    "TCGA-MESO": "pleura",
    "TCGA-UVM": "eye",
    "TCGA-THYM": "thymus",
    "TCGA-DLBC": "lymph_nodes",
    "TCGA-UCS": "uterus",
    "TCGA-CHOL": "bile_duct",
}

VALUE_SCALES = ("linear", "log2p1", "log1p")


# ---------------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------------
# TCGA sample-type codes (barcode positions 14-15) and their GDC "Sample Type" names.
TCGA_SAMPLE_TYPES = {
    "01": "Primary Tumor",
    "02": "Recurrent Tumor",
    "03": "Primary Blood Derived Cancer - Peripheral Blood",
    "04": "Recurrent Blood Derived Cancer - Bone Marrow",
    "05": "Additional - New Primary",
    "06": "Metastatic",
    "07": "Additional Metastatic",
    "08": "Human Tumor Original Cells",
    "09": "Primary Blood Derived Cancer - Bone Marrow",
    "10": "Blood Derived Normal",
    "11": "Solid Tissue Normal",
    "12": "Buccal Cell Normal",
    "13": "EBV Immortalized Normal",
    "14": "Bone Marrow Normal",
    "20": "Control Analyte",
    "40": "Recurrent Blood Derived Cancer - Peripheral Blood",
    "50": "Cell Lines",
    "60": "Primary Xenograft Tissue",
    "61": "Cell Line Derived Xenograft Tissue",
}
TCGA_BARCODE = re.compile(r"^TCGA[-.]([A-Z0-9]{2})[-.]([A-Z0-9]{4})[-.](\d{2})([A-Z])?", re.IGNORECASE)


def barcode_sample(barcode: str) -> tuple[str, str, str] | None:
    """``TCGA-02-0001-01C-01R-0177-01`` (or ``TCGA.02.0001.01``) -> (sample ``TCGA-02-0001-01C``, case
    ``TCGA-02-0001``, sample type ``Primary Tumor``); None when it is not a TCGA barcode."""
    match = TCGA_BARCODE.match(str(barcode).strip())
    if match is None:
        return None
    tss, participant, code, vial = match.groups()
    case = f"TCGA-{tss}-{participant}".upper()
    return f"{case}-{code}{(vial or '').upper()}", case, TCGA_SAMPLE_TYPES.get(code, f"sample type code {code}")


def read_tcga(
    download: TcgaDownload,
    sample_sheet: pd.DataFrame,
    fmt: str,
    value_column: str,
    htseq_values: str,
    keep_gene_types: list[str] | None,
    project: str | None,
    sample_types: list[str] | None,
    matrix_options: dict,
    genes: pd.DataFrame,
    history: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A TCGA download in any common form -> samples x genes matrix, sample table, dropped samples.

    Args:
        download: a GDC STAR folder, a GDC HTSeq folder or a matrix file.
        sample_sheet: the GDC sample sheet (folders; matrices too when given), or a sheet with
            ``sample_id`` and ``project_id`` (and optionally ``sample_type``) for a matrix; may be empty for
            a matrix whose samples are TCGA barcodes (``project`` then names the project).
        fmt: ``auto`` | ``star_folder`` | ``htseq_folder`` | ``matrix``.
        value_column: the STAR column read from STAR files.
        htseq_values: which HTSeq files of the folder: ``counts``, ``fpkm`` or ``fpkm_uq``.
        keep_gene_types: STAR rows kept while reading (bounds memory); None = all.
        project: the TCGA project of a matrix without sample sheet (e.g. ``TCGA-LGG``).
        sample_types: GDC sample types kept (e.g. ``[Primary Tumor]``); None = all.
        matrix_options: :func:`parse_expression_matrix` options (orientation, gene_column,
            annotation_columns, value_scale).
        genes: the gene annotation (tells a matrix's gene axis).
        history: the symbol history (previous and alias symbols, Entrez IDs).

    Returns:
        ``(matrix, samples, dropped)``: float32 samples x gene identifiers; the kept samples
        (``sample_id``, ``case_id``, ``project_id``, ``primary_site``, ``sample_type``, ``file_name``);
        the samples left out (``sample_id``, ``sample_type``, ``reason``).
    """
    detected = download.detect_format()
    fmt = detected if fmt == "auto" else fmt
    if (fmt == "matrix") != (detected == "matrix"):
        raise InputDataError(
            download.path,
            f"data_engineering.tcga.format is {fmt!r} but this is a {'file' if detected == 'matrix' else 'folder'}",
        )
    logger.info("TCGA input %s read as %s", download.path, fmt)
    if fmt == "matrix":
        return _tcga_matrix(download.path, sample_sheet, project, sample_types, matrix_options, genes, history)
    sheet = _gdc_sheet(sample_sheet)
    if fmt == "star_folder":
        if value_column not in STAR_COLUMNS[3:]:
            raise InputDataError(
                "parameters data_engineering.tcga.value_column",
                f"{value_column!r} is not a STAR value column {STAR_COLUMNS[3:]}",
            )
        files = download.star_files()

        def read(path):
            table = read_star_counts(path)
            table = table[table["gene_type"].isin(keep_gene_types)] if keep_gene_types else table
            return table["gene_id"], table[value_column]

    else:
        suffixes = HTSEQ_KINDS[htseq_values]
        files = {name: path for name, path in download.htseq_files().items() if name.endswith(suffixes)}
        sheet = sheet[sheet["File Name"].str.endswith(suffixes)]
        if sheet.empty or not files:
            present = {
                kind: sum(name.endswith(ends) for name in download.htseq_files())
                for kind, ends in HTSEQ_KINDS.items()
                if kind != htseq_values
            }
            others = [
                f"{n} {kind} file(s) ({', '.join('*' + x for x in HTSEQ_KINDS[kind])})"
                for kind, n in present.items()
                if n
            ]
            raise InputDataError(
                download.path,
                f"no HTSeq {htseq_values} file ({', '.join('*' + x for x in suffixes)}) in the folder and its sample "
                "sheet"
                + (
                    f"; it holds {' and '.join(others)}: set data_engineering.tcga.htseq_values to "
                    f"{' or '.join(k for k, n in present.items() if n)}"
                    if others
                    else ""
                ),
            )

        def read(path):
            table = read_htseq(path)
            return table["gene_id"], table["value"]

    listed = set(sheet["File Name"])
    unlisted = sorted(name for name in files if name not in listed and name.removesuffix(".gz") not in listed)
    if unlisted:
        logger.warning(
            "%d file(s) of %s are not in the sample sheet and are ignored, e.g. %s",
            len(unlisted),
            download.path,
            unlisted[:3],
        )
    sheet, dropped = _filter_sample_types(sheet, "Sample Type", "Sample ID", sample_types)
    matrix = _stack_files(files, sheet, read, download.path, source_of(sample_sheet, "TCGA sample sheet"))
    samples = _gdc_samples(sheet)
    return matrix, samples, dropped


def _gdc_sheet(sample_sheet: pd.DataFrame) -> pd.DataFrame:
    sheet_src = source_of(sample_sheet, "TCGA sample sheet")
    if sample_sheet.attrs.get("missing"):
        raise InputDataError(sheet_src, "not found: a GDC STAR/HTSeq folder needs the GDC sample sheet of its download")
    missing = [c for c in GDC_SHEET_COLUMNS if c not in sample_sheet.columns]
    if missing:
        raise InputDataError(sheet_src, f"not a GDC sample sheet: missing column(s) {missing}")
    sheet = sample_sheet.copy()
    for column in GDC_SHEET_COLUMNS:
        sheet[column] = sheet[column].astype(str).str.strip()
    no_duplicates(sheet, "File Name", sheet_src)
    sheet.attrs["source"] = sheet_src
    return sheet


def _filter_sample_types(
    sheet: pd.DataFrame, type_column: str, id_column: str, sample_types: list[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the rows of ``sample_types`` (all when None); the others as a dropped-samples table."""
    keep = sheet[type_column].isin(sample_types) if sample_types else pd.Series(True, index=sheet.index)
    dropped = pd.DataFrame(
        {
            "sample_id": sheet.loc[~keep, id_column].astype(str).to_numpy(),
            "sample_type": sheet.loc[~keep, type_column].astype(str).to_numpy(),
            "reason": f"sample type not in {sample_types}",
        }
    )
    if len(dropped):
        counts = dropped["sample_type"].value_counts()
        logger.info("TCGA: %d sample(s) left out by sample type: %s", len(dropped), dict(counts))
    out = sheet.loc[keep].reset_index(drop=True)
    out.attrs = dict(sheet.attrs)
    return out, dropped


def _stack_files(
    files: Mapping[str, Path], sheet: pd.DataFrame, read: Callable, folder: Path, sheet_src: str
) -> pd.DataFrame:
    """One value vector per sheet row, read file by file, stacked into samples x genes (one gene list)."""
    no_duplicates(sheet, "Sample ID", sheet_src)
    listed = {name: _match_file(name, files) for name in sheet["File Name"]}
    absent = [name for name, path in listed.items() if path is None]
    if absent:
        raise InputDataError(
            sheet_src, f"{len(absent)} file(s) listed in the sample sheet are not in {folder}, e.g. {absent[:3]}"
        )
    if sheet.empty:
        raise InputDataError(sheet_src, "no sample left to read (after the sample-type filter)")
    columns: list[np.ndarray] = []
    gene_index: pd.Index | None = None
    first_file = None
    for name in tqdm(sheet["File Name"], desc="Reading TCGA files", unit="file", leave=False, disable=None):
        ids, values = read(listed[name])
        index = pd.Index(ids)
        if gene_index is None:
            gene_index, first_file = index, name
        elif not index.equals(gene_index):
            raise InputDataError(
                listed[name],
                f"its gene rows differ from those of {first_file} (mixed gene models?); all files must share one gene list",
            )
        columns.append(values.to_numpy(dtype=np.float32))
    matrix = pd.DataFrame(
        np.vstack(columns), index=pd.Index(sheet["Sample ID"].astype(str), name="sample_id"), columns=gene_index
    )
    matrix.attrs["source"] = str(folder)
    return matrix


def _match_file(file_name: str, files: Mapping[str, Path]) -> Path | None:
    """The folder's file a sheet row names (by base name; a ``.gz`` on either side is tolerated)."""
    for candidate in (file_name, file_name + ".gz", file_name.removesuffix(".gz")):
        if candidate in files:
            return files[candidate]
    return None


def _gdc_samples(sheet: pd.DataFrame) -> pd.DataFrame:
    samples = pd.DataFrame(
        {
            "sample_id": sheet["Sample ID"].astype(str).to_numpy(),
            "case_id": sheet["Case ID"].astype(str).to_numpy(),
            "project_id": sheet["Project ID"].astype(str).to_numpy(),
            "primary_site": sheet["Project ID"].map(lambda p: TCGA_PRIMARY_SITE.get(p, p)).to_numpy(),
            "sample_type": sheet["Sample Type"].astype(str).to_numpy(),
            "file_name": sheet["File Name"].to_numpy(),
        }
    )
    for extra in ("batch", "center"):
        if extra in sheet.columns:
            samples[extra] = sheet[extra].astype(str).to_numpy()
    return samples


def _tcga_matrix(
    path: Path,
    sample_sheet: pd.DataFrame,
    project: str | None,
    sample_types: list[str] | None,
    matrix_options: dict,
    genes: pd.DataFrame,
    history: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A TCGA matrix file: samples described by a sheet (GDC or ``sample_id``/``project_id``) or by their barcodes."""
    matrix = parse_expression_matrix(read_table(path), genes=genes, history=history, **matrix_options)
    source = str(path)
    if not sample_sheet.attrs.get("missing") and len(sample_sheet.columns):
        table = _matrix_sheet(sample_sheet)
        unknown = sorted(set(matrix.index) - set(table["sample_id"]))
        if unknown:
            raise InputDataError(
                source_of(sample_sheet, "TCGA sample sheet"),
                f"{len(unknown)} sample(s) of {source} are not in the sample sheet, e.g. {unknown[:3]}",
            )
        table = table.set_index("sample_id").loc[list(matrix.index)].reset_index()
        table, matrix = _sample_level_ids(table, matrix, source)
    else:
        parsed = [barcode_sample(s) for s in matrix.index]
        not_barcodes = [s for s, p in zip(matrix.index, parsed, strict=True) if p is None]
        if not_barcodes:
            raise InputDataError(
                source,
                f"{len(not_barcodes)} sample ID(s) are not TCGA barcodes (e.g. {not_barcodes[:3]}) and no TCGA "
                "sample sheet was given: add one (sample_id, project_id[, sample_type])",
            )
        if not project:
            raise InputDataError(
                source,
                "a TCGA matrix without a sample sheet needs its project: set data_engineering.tcga.project "
                "(e.g. TCGA-LGG) or give a sample sheet with project_id",
            )
        table = pd.DataFrame(
            {
                "sample_id": [p[0] for p in parsed],
                "case_id": [p[1] for p in parsed],
                "project_id": project,
                "sample_type": [p[2] for p in parsed],
                "barcode": list(matrix.index),
            }
        )
        matrix.index = pd.Index(table["sample_id"], name="sample_id")
        _no_duplicate_labels(matrix.index, "TCGA sample (after reading barcodes)", source)
    table["primary_site"] = table["project_id"].map(lambda p: TCGA_PRIMARY_SITE.get(p, p))
    table["file_name"] = path.name
    table, dropped = _filter_sample_types(table, "sample_type", "sample_id", sample_types)
    if table.empty:
        raise InputDataError(source, f"no sample of type {sample_types} ({len(dropped)} left out)")
    matrix = matrix.loc[table["sample_id"]]
    matrix.attrs["source"] = source
    columns = ["sample_id", "case_id", "project_id", "primary_site", "sample_type", "file_name"]
    return matrix, table[columns + [c for c in table.columns if c not in columns]], dropped


def _sample_level_ids(table: pd.DataFrame, matrix: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TCGA barcodes named down to the sample (``TCGA-02-0001-01C``), as without a sheet, the matrix's own labels
    kept in ``barcode``; left as they are when they are not all barcodes or two aliquots of one sample would merge."""
    parsed = [barcode_sample(s) for s in table["sample_id"]]
    table = table.assign(barcode=table["sample_id"].to_numpy())
    if any(p is None for p in parsed):
        return table, matrix
    samples = [p[0] for p in parsed]
    if len(set(samples)) < len(samples):
        logger.info("%s: several aliquots of one TCGA sample: the full barcodes are kept as sample IDs", source)
        return table, matrix
    table["sample_id"] = samples
    matrix = matrix.set_axis(pd.Index(samples, name="sample_id"), axis=0)
    return table, matrix


def _matrix_sheet(sample_sheet: pd.DataFrame) -> pd.DataFrame:
    """A matrix's sample sheet as ``sample_id``, ``case_id``, ``project_id``, ``sample_type``: a GDC sheet or
    a ``sample_id`` + ``project_id`` table (sample type and case from the barcode when absent)."""
    source = source_of(sample_sheet, "TCGA sample sheet")
    if all(c in sample_sheet.columns for c in GDC_SHEET_COLUMNS):
        sheet = _gdc_sheet(sample_sheet)
        table = pd.DataFrame(
            {
                "sample_id": sheet["Sample ID"],
                "case_id": sheet["Case ID"],
                "project_id": sheet["Project ID"],
                "sample_type": sheet["Sample Type"],
            }
        )
    else:
        sheet = checked_sheet(sample_sheet, ["sample_id", "project_id"], "sample_id", source)
        parsed = [barcode_sample(s) for s in sheet["sample_id"]]
        table = pd.DataFrame(
            {
                "sample_id": sheet["sample_id"],
                "case_id": sheet["case_id"].astype(str)
                if "case_id" in sheet
                else [p[1] if p else s for p, s in zip(parsed, sheet["sample_id"], strict=True)],
                "project_id": sheet["project_id"],
                "sample_type": sheet["sample_type"].astype(str)
                if "sample_type" in sheet
                else [p[2] if p else "unknown" for p in parsed],
            }
        )
    no_duplicates(table, "sample_id", source)
    return table.reset_index(drop=True)


# A matrix of thousands of genes on a linear scale (counts, TPM, FPKM) reaches values in the thousands; log2(x+1)
# or ln(1+x) values stay below ~25. Beyond these, the declared value_scale contradicts the data.
LOG_SCALE_MAX = 50.0
LINEAR_SCALE_MIN = 100.0
SCALE_CHECK_MIN_VALUES = 1000  # fewer values than this: no opinion


def check_value_scale(values: np.ndarray, value_scale: str, source: str, key: str) -> None:
    """Stop with one line when the values contradict ``value_scale`` (``key``: the parameter to set): a matrix
    read as ``linear`` whose largest value is below :data:`LOG_SCALE_MAX` with mostly fractional values looks
    logged; one read as ``log2p1``/``log1p`` with values above :data:`LINEAR_SCALE_MIN` looks linear."""
    finite = values[np.isfinite(values)]
    if finite.size < SCALE_CHECK_MIN_VALUES:
        return
    top = float(finite.max())
    fractional = float((finite != np.round(finite)).mean())
    if value_scale == "linear" and top < LOG_SCALE_MAX and fractional > 0.5:
        raise InputDataError(
            source,
            f"the values look log-scaled (largest {top:.3g}; a linear count or TPM matrix reaches thousands) but "
            f"{key} is linear: set {key}: log2p1 (log2(x+1)) or log1p (ln(1+x))",
        )
    if value_scale in ("log2p1", "log1p") and top > LINEAR_SCALE_MIN:
        raise InputDataError(
            source,
            f"the values look linear (largest {top:.3g}; logged expression stays below ~25) but {key} is "
            f"{value_scale}: set {key}: linear",
        )


def parse_expression_matrix(
    frame: pd.DataFrame,
    orientation: str,
    gene_column: str | None,
    annotation_columns: list[str] | None,
    value_scale: str,
    genes: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    scale_key: str = "value_scale",
) -> pd.DataFrame:
    """A raw expression table -> samples x genes float32 (gene identifiers as in the file).

    Args:
        frame: as read from TSV/CSV/parquet, first column (or ``gene_column``) = gene or sample IDs.
        orientation: ``genes_x_samples``, ``samples_x_genes`` or ``auto``: the axis whose labels look like
            genes (Ensembl IDs, ``SYMBOL|ENTREZ``, symbols of ``genes`` or of ``history``, Entrez IDs of
            ``history``) is the gene axis; a matrix where neither does stops with a message.
        gene_column: the identifier column (genes x samples) or sample column (samples x genes);
            default: the first column.
        annotation_columns: text columns to drop (e.g. ``gene_name`` beside ``gene_id``).
        value_scale: ``linear`` (counts/TPM: negative values are an error), ``log2p1`` or ``log1p``; values that
            contradict it stop the run (:func:`check_value_scale`; ``scale_key`` names the parameter).
    """
    source = source_of(frame, "expression matrix")
    if value_scale not in VALUE_SCALES:
        raise InputDataError(source, f"unknown value_scale {value_scale!r}; use one of {VALUE_SCALES}")
    if frame.shape[1] < 2:
        raise InputDataError(source, "an expression matrix needs an identifier column and at least one value column")
    id_col = gene_column or frame.columns[0]
    if id_col not in frame.columns:
        raise InputDataError(source, f"identifier column {id_col!r} not found")
    drop = [c for c in (annotation_columns or []) if c in frame.columns and c != id_col]
    body = frame.drop(columns=drop).set_index(id_col)
    body.index = body.index.astype(str)
    body.columns = body.columns.astype(str)
    if orientation == "auto":
        orientation = detect_orientation(body, genes, history, source)
    if orientation not in ("genes_x_samples", "samples_x_genes"):
        raise InputDataError(source, f"unknown orientation {orientation!r}")
    matrix = body.T if orientation == "genes_x_samples" else body
    matrix.index.name = "sample_id"
    _no_duplicate_labels(matrix.index, "sample ID", source)
    values = matrix.apply(pd.to_numeric, errors="coerce")
    if values.isna().to_numpy().any():
        rows, cols = np.where(values.isna().to_numpy())
        raise InputDataError(
            source,
            f"{len(rows)} missing or non-numeric value(s), e.g. sample {values.index[rows[0]]!r}, gene {values.columns[cols[0]]!r}",
        )
    check_value_scale(values.to_numpy(float), value_scale, source, scale_key)
    if value_scale == "linear" and (values.to_numpy() < 0).any():
        rows, cols = np.where(values.to_numpy() < 0)
        raise InputDataError(
            source,
            f"{len(rows)} negative value(s) in a linear-scale matrix, e.g. sample {values.index[rows[0]]!r}, "
            f"gene {values.columns[cols[0]]!r} (set value_scale to log2p1/log1p if the data are logged)",
        )
    if values.columns.duplicated().any():
        dups = values.columns[values.columns.duplicated()].unique()
        logger.warning(
            "%s: %d gene identifier(s) appear on several rows (e.g. %s): their values are averaged",
            source,
            len(dups),
            list(dups[:3]),
        )
        values = values.T.groupby(level=0, sort=False).mean().T
    out = values.astype(np.float32)
    out.attrs["source"] = source
    return out


def detect_orientation(
    body: pd.DataFrame, genes: pd.DataFrame | None, history: pd.DataFrame | None, source: str
) -> str:
    """``genes_x_samples`` when the row labels look like genes, ``samples_x_genes`` when the column labels do."""
    rows = gene_like_fraction(body.index[:500], genes, history)
    cols = gene_like_fraction(body.columns[:500], genes, history)
    if max(rows, cols) >= 0.5 and rows != cols:
        return "genes_x_samples" if rows > cols else "samples_x_genes"
    barcode_rows, barcode_cols = (
        np.mean([barcode_sample(v) is not None for v in axis[:500]]) for axis in (body.index, body.columns)
    )
    if max(barcode_rows, barcode_cols) >= 0.5 and barcode_rows != barcode_cols:  # TCGA barcodes name the samples
        return "samples_x_genes" if barcode_rows > barcode_cols else "genes_x_samples"
    raise InputDataError(
        source,
        f"cannot tell which axis holds the genes ({rows:.0%} of the row labels and {cols:.0%} of the column labels "
        f"look like gene identifiers, e.g. {list(body.index[:2])} / {list(body.columns[:2])}): set orientation",
    )


def validate_cohort_samples(matrix: pd.DataFrame, sample_sheet: pd.DataFrame) -> pd.DataFrame:
    """Check that the cohort sample sheet and the expression columns name the same samples.

    Returns the sample sheet reordered like the matrix (columns ``sample_id``, ``patient_id``,
    ``lineage_id`` plus any others such as ``os_months`` / ``pfs_months``).
    """
    sheet_src = source_of(sample_sheet, "cohort sample sheet")
    matrix_src = source_of(matrix, "cohort expression matrix")
    sheet = checked_sheet(sample_sheet, COHORT_SHEET_COLUMNS, "sample_id", sheet_src)
    in_sheet, in_matrix = set(sheet["sample_id"]), set(matrix.index)
    if in_sheet != in_matrix:
        only_sheet = sorted(in_sheet - in_matrix)
        only_matrix = sorted(in_matrix - in_sheet)
        raise InputDataError(
            sheet_src,
            f"sample IDs do not match the columns of {matrix_src}: "
            f"{len(only_sheet)} only in the sheet (e.g. {only_sheet[:3]}), "
            f"{len(only_matrix)} only in the matrix (e.g. {only_matrix[:3]})",
        )
    return sheet.set_index("sample_id").loc[matrix.index].reset_index()


def require_minimum(n: int, minimum: int, what: str, where, key: str) -> None:
    """Refuse data too small to mean anything: one line naming the file (``where``: a frame read from it, or
    its name) and the threshold's parameter."""
    if n < minimum:
        source = where if isinstance(where, str) else source_of(where, "input")
        raise InputDataError(source, f"{n} {what}, fewer than the {minimum} needed (data_engineering.minimums.{key})")


def _no_duplicate_labels(labels: pd.Index, what: str, source: str) -> None:
    dup = labels[labels.duplicated()]
    if len(dup):
        raise InputDataError(source, f"duplicate {what} {dup[0]!r} ({len(dup)} duplicated label(s))")


# ---------------------------------------------------------------------------------------------------
# Harmonisation
# ---------------------------------------------------------------------------------------------------
def map_columns_to_genes(
    matrix: pd.DataFrame, genes: pd.DataFrame, stage: str, history: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rename gene columns (Ensembl IDs, symbols, ``SYMBOL|ENTREZ``, Entrez IDs) to stripped Ensembl IDs.

    Columns that match no annotated gene, or PAR_Y copies, are dropped with their reason; several columns
    mapping to one gene (symbol aliases) are averaged. Returns the mapped matrix and the dropped-genes rows.
    """
    mapped, how, reason = to_stripped_ids(list(matrix.columns), genes, history)
    keep = mapped.notna().to_numpy()
    dropped = pd.DataFrame({"gene": list(matrix.columns[~keep]), "stage": stage, "reason": reason[~keep].to_numpy()})
    via = how[keep].value_counts()
    if any(k not in ("ensembl", "symbol") for k in via.index):
        logger.info("%s: gene identifiers mapped by %s", source_of(matrix, stage), dict(via))
    out = matrix.loc[:, keep].copy()
    out.columns = mapped[keep].to_numpy()
    if out.columns.duplicated().any():
        dups = out.columns[out.columns.duplicated()].unique()
        dropped = pd.concat(
            [
                dropped,
                pd.DataFrame(
                    {"gene": list(dups), "stage": stage, "reason": "several columns map to this gene: averaged"}
                ),
            ]
        )
        out = out.T.groupby(level=0, sort=False).mean().T.astype(np.float32)
    out.attrs = dict(matrix.attrs)
    return out, dropped


def harmonise_genes(
    tcga: pd.DataFrame,
    cohort: pd.DataFrame,
    genes: pd.DataFrame,
    gene_types: list[str],
    annotation_dropped: pd.DataFrame,
    history: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Keep the genes of ``gene_types`` common to TCGA, cohort and annotation (identifiers mapped with the
    symbol ``history`` when given).

    Returns ``(tcga, cohort, gene_table, dropped)`` where both matrices share the same gene columns
    (stripped IDs, annotation order) and ``dropped`` lists every gene removed and why.
    """
    tcga_m, d1 = map_columns_to_genes(tcga, genes, "tcga", history)
    cohort_m, d2 = map_columns_to_genes(cohort, genes, "cohort", history)
    typed = genes[genes["gene_type"].isin(gene_types)]
    not_typed = set(tcga_m.columns).union(cohort_m.columns) - set(typed["gene_id"])
    common = set(tcga_m.columns) & set(cohort_m.columns)
    d3 = pd.DataFrame({"gene": sorted(not_typed), "stage": "harmonise", "reason": f"gene_type not in {gene_types}"})
    only = sorted((set(tcga_m.columns) ^ set(cohort_m.columns)) & set(typed["gene_id"]))
    d4 = pd.DataFrame(
        {
            "gene": only,
            "stage": "harmonise",
            "reason": ["only in TCGA" if g in tcga_m.columns else "only in the cohort" for g in only],
        }
    )
    table = typed[typed["gene_id"].isin(common)].reset_index(drop=True)
    if table.empty:
        raise InputDataError(
            f"{source_of(tcga, 'TCGA')} + {source_of(cohort, 'cohort')}",
            f"no gene left after harmonisation: {len(tcga_m.columns)} TCGA genes and {len(cohort_m.columns)} cohort genes "
            f"matched the annotation, {len(common)} in common, none of type {gene_types}",
        )
    order = table["gene_id"].to_list()
    dropped = pd.concat([annotation_dropped, d1, d2, d3, d4], ignore_index=True)
    return tcga_m[order], cohort_m[order], table, dropped


# ---------------------------------------------------------------------------------------------------
# Transform
# ---------------------------------------------------------------------------------------------------
def to_log1p(matrix: pd.DataFrame, value_scale: str) -> pd.DataFrame:
    """Put values on one scale, ln(1 + x): linear -> log1p; log2(1 + x) -> times ln 2; log1p -> as is."""
    if value_scale == "linear":
        return np.log1p(matrix.clip(lower=0)).astype(np.float32)
    if value_scale == "log2p1":
        return (matrix * np.log(2.0)).astype(np.float32)
    if value_scale == "log1p":
        return matrix.astype(np.float32)
    raise ValueError(f"unknown value_scale {value_scale!r}; use one of {VALUE_SCALES}")


def variance_filter(
    matrices: Mapping[str, pd.DataFrame], quantile: float, min_variance: float
) -> tuple[list[str], pd.DataFrame]:
    """Genes to keep: a gene stays if, in ANY of ``matrices``, its variance is >= that matrix's
    ``quantile``-th variance quantile and >= ``min_variance``.

    "Any" matters: a lineage driver can be flat across TCGA yet vary across the cohort's lineages.

    Returns the kept gene IDs (input order) and a table of per-matrix variances.
    """
    variances = pd.DataFrame({name: m.var(axis=0, ddof=1) for name, m in matrices.items()})
    keep = pd.Series(False, index=variances.index)
    for name in variances.columns:
        v = variances[name].fillna(0.0)
        threshold = max(float(v.quantile(quantile)), float(min_variance))
        keep |= v >= threshold if threshold > 0 else v > 0
    variances["kept"] = keep
    return variances.index[keep].to_list(), variances


def fit_zscore(reference: pd.DataFrame) -> pd.DataFrame:
    """Per-gene mean and standard deviation (std 0 -> 1 so constant genes map to 0)."""
    mean = reference.mean(axis=0)
    std = reference.std(axis=0, ddof=0).replace(0.0, 1.0)
    return pd.DataFrame({"mean": mean, "std": std})


def apply_zscore(matrix: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    return ((matrix - stats["mean"]) / stats["std"]).astype(np.float32)


def normalise_features(
    tcga: pd.DataFrame,
    cohort: pd.DataFrame,
    genes: pd.DataFrame,
    dropped: pd.DataFrame,
    tcga_scale: str,
    cohort_scale: str,
    quantile: float,
    min_variance: float,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """ln(1+x), drop low-variance genes, z-score with TCGA statistics (applied to the cohort too).

    Returns:
        ``tcga_features``, ``cohort_features`` (samples x genes, float32, fixed gene order),
        ``gene_table`` (``position``, IDs, symbol, chromosome, TCGA mean/std, variances), the full
        ``dropped_genes`` table, and a summary.
    """
    tcga_log, cohort_log = to_log1p(tcga, tcga_scale), to_log1p(cohort, cohort_scale)
    kept, variances = variance_filter(
        {"tcga": tcga_log, "cohort": cohort_log}, quantile=quantile, min_variance=min_variance
    )
    low = variances.index[~variances["kept"]]
    reason = f"low variance (below the {quantile:.0%} quantile in TCGA and in the cohort)"
    dropped = pd.concat(
        [dropped, pd.DataFrame({"gene": list(low), "stage": "normalise", "reason": reason})], ignore_index=True
    )
    stats = fit_zscore(tcga_log[kept])
    tcga_z, cohort_z = apply_zscore(tcga_log[kept], stats), apply_zscore(cohort_log[kept], stats)
    table = genes.set_index("gene_id").loc[kept].reset_index()
    table.insert(0, "position", range(len(table)))
    table["tcga_mean"] = stats["mean"].to_numpy()
    table["tcga_std"] = stats["std"].to_numpy()
    table["var_tcga"] = variances.loc[kept, "tcga"].to_numpy()
    table["var_cohort"] = variances.loc[kept, "cohort"].to_numpy()
    summary = {
        "genes_harmonised": int(genes.shape[0]),
        "genes_kept": int(len(kept)),
        "genes_dropped_low_variance": int(len(low)),
        "tcga_samples": int(tcga_z.shape[0]),
        "cohort_samples": int(cohort_z.shape[0]),
        "dropped_by_reason": dropped.groupby(["stage", "reason"])
        .size()
        .rename("n")
        .reset_index()
        .to_dict(orient="records"),
    }
    return tcga_z, cohort_z, table, dropped, summary

"""Expression data: GDC STAR folders and expression matrices in, harmonised normalised matrices out.

Convention: every matrix handed between nodes is **samples x genes** (index = sample ID, columns = gene
identifiers); gene columns are stripped Ensembl IDs once harmonised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gb_kedro.datasets.star_counts import STAR_COLUMNS
from gb_kedro.datasets.table import checked_sheet, no_duplicates
from gb_kedro.errors import InputDataError, source_of
from gb_kedro.genes import looks_like_ensembl, to_stripped_ids

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
def assemble_star_counts(
    partitions: Mapping[str, Callable[[], pd.DataFrame]],
    sample_sheet: pd.DataFrame,
    value_column: str,
    keep_gene_types: list[str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stack a folder of GDC STAR files into one samples x genes matrix.

    Args:
        partitions: ``PartitionedDataset`` output: partition ID (path under the folder, without the
            suffix) -> loader of one STAR file.
        sample_sheet: GDC sample sheet (``File Name``, ``Case ID``, ``Sample ID``, ``Project ID``,
            ``Sample Type``); each row names one file of the folder by its base name.
        value_column: which STAR column to keep (``tpm_unstranded``, ``unstranded``, ...).
        keep_gene_types: keep only these ``gene_type`` rows (bounds memory on 10k samples); None = all.

    Returns:
        ``(matrix, samples)``: float32 samples x versioned gene IDs, and a sample table (``sample_id``,
        ``case_id``, ``project_id``, ``primary_site``, ``sample_type``, ``file_name``) in matrix order.
    """
    sheet_src = source_of(sample_sheet, "TCGA sample sheet")
    missing = [c for c in GDC_SHEET_COLUMNS if c not in sample_sheet.columns]
    if missing:
        raise InputDataError(sheet_src, f"not a GDC sample sheet: missing column(s) {missing}")
    if value_column not in STAR_COLUMNS[3:]:
        raise InputDataError(
            "parameters data_engineering.tcga.value_column",
            f"{value_column!r} is not a STAR value column {STAR_COLUMNS[3:]}",
        )
    sheet = sample_sheet.copy()
    sheet["File Name"] = sheet["File Name"].astype(str).str.strip()
    no_duplicates(sheet, "File Name", sheet_src)
    no_duplicates(sheet, "Sample ID", sheet_src)
    by_name = {PurePosixPath(pid).name: pid for pid in partitions}
    if len(by_name) != len(partitions):
        raise InputDataError("TCGA STAR folder", "two files share a base name in different sub-folders")
    listed = {name: _strip_suffix(name, by_name) for name in sheet["File Name"]}
    absent = [name for name, pid in listed.items() if pid is None]
    if absent:
        raise InputDataError(
            sheet_src, f"{len(absent)} file(s) listed in the sample sheet are not in the STAR folder, e.g. {absent[:3]}"
        )
    unlisted = sorted(set(partitions) - set(listed.values()))
    if unlisted:
        logger.warning(
            "%d STAR file(s) are not in the sample sheet and are ignored, e.g. %s", len(unlisted), unlisted[:3]
        )

    columns: list[np.ndarray] = []
    gene_index: pd.Index | None = None
    first_file = None
    for name in tqdm(sheet["File Name"], desc="Reading STAR files", unit="file", leave=False, disable=None):
        genes = partitions[listed[name]]()
        if keep_gene_types:
            genes = genes[genes["gene_type"].isin(keep_gene_types)]
        index = pd.Index(genes["gene_id"])
        if gene_index is None:
            gene_index, first_file = index, name
        elif not index.equals(gene_index):
            raise InputDataError(
                genes.attrs.get("source", name),
                f"its gene rows differ from those of {first_file} (mixed gene models?); all STAR files must share one gene list",
            )
        columns.append(genes[value_column].to_numpy(dtype=np.float32))
    matrix = pd.DataFrame(
        np.vstack(columns), index=pd.Index(sheet["Sample ID"].astype(str), name="sample_id"), columns=gene_index
    )
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
    return matrix, samples


def _strip_suffix(file_name: str, by_name: Mapping[str, str]) -> str | None:
    """Partition IDs have the dataset's suffix removed; match a sheet's file name either way."""
    if file_name in by_name:
        return by_name[file_name]
    for suffix in (".tsv", ".txt"):
        if file_name.endswith(suffix) and file_name[: -len(suffix)] in by_name:
            return by_name[file_name[: -len(suffix)]]
    return None


def parse_expression_matrix(
    frame: pd.DataFrame,
    orientation: str,
    gene_column: str | None,
    annotation_columns: list[str] | None,
    value_scale: str,
) -> pd.DataFrame:
    """A raw expression table -> samples x genes float32 (gene identifiers as in the file).

    Args:
        frame: as read from TSV/CSV/parquet, first column (or ``gene_column``) = gene or sample IDs.
        orientation: ``genes_x_samples``, ``samples_x_genes`` or ``auto`` (Ensembl IDs down the first
            column -> genes x samples; Ensembl IDs across the header -> samples x genes; otherwise
            genes x samples, the usual layout of symbol-indexed matrices).
        gene_column: the identifier column (genes x samples) or sample column (samples x genes);
            default: the first column.
        annotation_columns: text columns to drop (e.g. ``gene_name`` beside ``gene_id``).
        value_scale: ``linear`` (counts/TPM: negative values are an error), ``log2p1`` or ``log1p``.
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
        if looks_like_ensembl(body.index[:200]):
            orientation = "genes_x_samples"
        elif looks_like_ensembl(body.columns[:200]):
            orientation = "samples_x_genes"
        else:
            orientation = "genes_x_samples"
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


def _no_duplicate_labels(labels: pd.Index, what: str, source: str) -> None:
    dup = labels[labels.duplicated()]
    if len(dup):
        raise InputDataError(source, f"duplicate {what} {dup[0]!r} ({len(dup)} duplicated label(s))")


# ---------------------------------------------------------------------------------------------------
# Harmonisation
# ---------------------------------------------------------------------------------------------------
def map_columns_to_genes(matrix: pd.DataFrame, genes: pd.DataFrame, stage: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rename gene columns (versioned IDs or symbols) to stripped Ensembl IDs.

    Columns that match no annotated gene, or PAR_Y copies, are dropped; several columns mapping to
    one gene (symbol aliases) are averaged. Returns the mapped matrix and the dropped-genes rows.
    """
    mapped, how = to_stripped_ids(list(matrix.columns), genes)
    dropped = pd.DataFrame(
        {
            "gene": [matrix.columns[i] for i in np.where(how.isin(["unmapped", "par_y"]))[0]],
            "stage": stage,
            "reason": [
                "PAR_Y copy of a chrX gene" if h == "par_y" else "identifier not in the gene annotation"
                for h in how[how.isin(["unmapped", "par_y"])]
            ],
        }
    )
    keep = mapped.notna().to_numpy()
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
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Keep the genes of ``gene_types`` common to TCGA, cohort and annotation.

    Returns ``(tcga, cohort, gene_table, dropped)`` where both matrices share the same gene columns
    (stripped IDs, annotation order) and ``dropped`` lists every gene removed and why.
    """
    tcga_m, d1 = map_columns_to_genes(tcga, genes, "tcga")
    cohort_m, d2 = map_columns_to_genes(cohort, genes, "cohort")
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

"""GDC STAR gene-count files (``*.rna_seq.augmented_star_gene_counts.tsv``), one per sample.

Layout (GENCODE v36 gene model)::

    # gene-model: GENCODE v36
    gene_id  gene_name  gene_type  unstranded  stranded_first  stranded_second  tpm_unstranded  fpkm_unstranded  fpkm_uq_unstranded
    N_unmapped     <counts in the three count columns, other columns empty>
    N_multimapping ...
    N_noFeature    ...
    N_ambiguous    ...
    ENSG00000000003.15  TSPAN6  protein_coding  ...

A folder of them is read with Kedro's ``partitions.PartitionedDataset`` using this dataset for each file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gb_kedro.datasets.atomic import LocalFileDataset, atomic_path
from gb_kedro.errors import InputDataError

STAR_COLUMNS = [
    "gene_id",
    "gene_name",
    "gene_type",
    "unstranded",
    "stranded_first",
    "stranded_second",
    "tpm_unstranded",
    "fpkm_unstranded",
    "fpkm_uq_unstranded",
]
STAR_SUMMARY_ROWS = ["N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"]
GENE_MODEL_LINE = "# gene-model: GENCODE v36"
_NUMERIC = STAR_COLUMNS[3:]


def read_star_counts(path: str | Path) -> pd.DataFrame:
    """Read one GDC STAR-counts file; returns the gene rows (summary rows dropped), all columns.

    Raises:
        InputDataError: missing file, a header that is not the GDC STAR header, no gene rows,
            duplicated gene IDs, or non-numeric / NaN / negative values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file not found")
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().rstrip("\n")
        header_line = handle.readline().rstrip("\n") if first.startswith("#") else first
    header = header_line.split("\t")
    if header != STAR_COLUMNS:
        raise InputDataError(
            path,
            "not a GDC STAR-counts file: expected the header "
            f"{'/'.join(STAR_COLUMNS)} (tab-separated, after an optional '# gene-model' line), "
            f"found {'/'.join(header)[:200]!r}",
        )
    skip = 1 if first.startswith("#") else 0
    try:
        table = pd.read_csv(path, sep="\t", skiprows=skip, dtype={"gene_id": str, "gene_name": str, "gene_type": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputDataError(path, f"cannot be parsed ({exc})") from exc
    genes = table[~table["gene_id"].isin(STAR_SUMMARY_ROWS)].reset_index(drop=True)
    if genes.empty:
        raise InputDataError(path, "no gene rows after the header and the N_* summary rows")
    if genes["gene_id"].duplicated().any():
        dup = genes.loc[genes["gene_id"].duplicated(), "gene_id"].iloc[0]
        raise InputDataError(path, f"gene_id {dup!r} appears more than once")
    for column in _NUMERIC:
        values = pd.to_numeric(genes[column], errors="coerce")
        if values.isna().any():
            bad = genes.loc[values.isna(), "gene_id"].iloc[0]
            raise InputDataError(path, f"column {column!r} has a missing or non-numeric value (gene {bad})")
        if (values < 0).any():
            bad = genes.loc[values < 0, "gene_id"].iloc[0]
            raise InputDataError(path, f"column {column!r} has a negative value (gene {bad})")
        genes[column] = values
    genes.attrs["source"] = str(path)
    return genes


def write_star_counts(genes: pd.DataFrame, path: str | Path, summary: dict[str, int] | None = None) -> None:
    """Write gene rows in the exact GDC layout (gene-model line, header, 4 summary rows, genes)."""
    missing = [c for c in STAR_COLUMNS if c not in genes.columns]
    if missing:
        raise ValueError(f"cannot write STAR counts: missing columns {missing}")
    summary = summary or {}
    rows = []
    for name in STAR_SUMMARY_ROWS:
        n = int(summary.get(name, 0))
        rows.append(f"{name}\t\t\t{n}\t{n}\t{n}\t\t\t")
    body = genes[STAR_COLUMNS].copy()
    for column in ("unstranded", "stranded_first", "stranded_second"):
        body[column] = body[column].astype(np.int64)
    for column in ("tpm_unstranded", "fpkm_unstranded", "fpkm_uq_unstranded"):
        body[column] = body[column].map(lambda v: f"{v:.4f}")
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(GENE_MODEL_LINE + "\n")
            handle.write("\t".join(STAR_COLUMNS) + "\n")
            handle.write("\n".join(rows) + "\n")
            body.to_csv(handle, sep="\t", header=False, index=False, lineterminator="\n")


class StarCountsDataset(LocalFileDataset):
    """One GDC STAR-counts TSV. Use as the ``dataset`` of a ``partitions.PartitionedDataset``.

    ``save`` takes a frame with the STAR columns and, optionally, ``attrs["summary"]`` holding the
    ``N_*`` counts.
    """

    def load(self) -> pd.DataFrame:
        return read_star_counts(self._filepath)

    def save(self, data: pd.DataFrame) -> None:
        write_star_counts(data, self._filepath, summary=data.attrs.get("summary"))

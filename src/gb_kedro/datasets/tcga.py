"""A TCGA expression download in any of its common forms: a GDC STAR folder, a GDC HTSeq folder or one
expression matrix file.

* **STAR folder** (GDC, data release 32+): one ``*.rna_seq.augmented_star_gene_counts.tsv`` per sample,
  in sub-folders named by file ID (see :mod:`gb_kedro.datasets.star_counts`);
* **HTSeq folder** (GDC legacy, before release 32): one ``*.htseq.counts(.gz)`` (raw counts) or
  ``*.FPKM.txt(.gz)`` / ``*.FPKM-UQ.txt(.gz)`` per sample: two tab-separated columns without header,
  versioned Ensembl ID and value, then HTSeq's ``__no_feature`` ... summary rows;
* **matrix**: one TSV/CSV/parquet file (gzip ok) in either orientation (RSEM RNASeqV2 ``SYMBOL|ENTREZ``
  tables, UCSC Xena, TCGAbiolinks / RTCGA exports).

:class:`TcgaDownloadDataset` loads a :class:`TcgaDownload` (the path and what is in it); the readers run
in :mod:`gb_kedro.expression` so that a 10k-sample folder is streamed file by file.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset

from gb_kedro.datasets.star_counts import STAR_COLUMNS, write_star_counts
from gb_kedro.errors import InputDataError

STAR_SUFFIX = ".tsv"
# HTSeq file kinds of a GDC legacy download, by the value they hold (``data_engineering.tcga.htseq_values``).
HTSEQ_KINDS = {
    "counts": (".htseq.counts", ".htseq.counts.gz"),
    "fpkm": (".FPKM.txt", ".FPKM.txt.gz"),
    "fpkm_uq": (".FPKM-UQ.txt", ".FPKM-UQ.txt.gz"),
}
HTSEQ_SUFFIXES = tuple(suffix for kind in HTSEQ_KINDS.values() for suffix in kind)


def read_htseq(path: str | Path) -> pd.DataFrame:
    """One GDC HTSeq file -> ``gene_id`` (versioned Ensembl), ``value``; HTSeq's ``__*`` rows dropped.

    Raises:
        InputDataError: not two tab-separated columns, no gene rows, duplicated IDs, non-numeric or negative values.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", header=None, dtype={0: str}, compression="infer")
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputDataError(path, f"cannot be parsed as an HTSeq file ({exc})") from exc
    if table.shape[1] != 2:
        raise InputDataError(
            path, f"an HTSeq file has 2 tab-separated columns (gene ID, value), found {table.shape[1]}"
        )
    table.columns = ["gene_id", "value"]
    genes = table[~table["gene_id"].str.startswith("__")].reset_index(drop=True)
    if genes.empty:
        raise InputDataError(path, "no gene rows (only HTSeq __ summary rows)")
    if genes["gene_id"].duplicated().any():
        raise InputDataError(
            path, f"gene_id {genes.loc[genes['gene_id'].duplicated(), 'gene_id'].iloc[0]!r} appears more than once"
        )
    values = pd.to_numeric(genes["value"], errors="coerce")
    if values.isna().any() or (values < 0).any():
        bad = genes.loc[values.isna() | (values < 0), "gene_id"].iloc[0]
        raise InputDataError(path, f"a missing, non-numeric or negative value (gene {bad})")
    genes["value"] = values.astype(np.float64)
    genes.attrs["source"] = str(path)
    return genes


def _is_star(path: Path) -> bool:
    """A ``.tsv`` whose header (after an optional ``# gene-model`` line) is the GDC STAR header."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline().rstrip("\n")
            header = handle.readline().rstrip("\n") if first.startswith("#") else first
    except OSError:
        return False
    return header.split("\t") == STAR_COLUMNS


@dataclass(frozen=True)
class TcgaDownload:
    """A TCGA download on disk: ``path`` is a folder (STAR or HTSeq files) or a matrix file."""

    path: Path

    def detect_format(self) -> str:
        """``matrix`` for a file; ``star_folder`` or ``htseq_folder`` from the files of a folder.

        Raises:
            InputDataError: an empty folder, a folder with neither kind of file, or with both.
        """
        if self.path.is_file():
            return "matrix"
        star, htseq = self.star_files(), self.htseq_files()
        if star and htseq:
            raise InputDataError(
                self.path,
                f"holds both GDC STAR files ({len(star)}) and HTSeq files ({len(htseq)}): "
                "set data_engineering.tcga.format to star_folder or htseq_folder",
            )
        if star:
            return "star_folder"
        if htseq:
            return "htseq_folder"
        raise InputDataError(
            self.path,
            "no TCGA expression file in this folder: expected GDC STAR-counts files (*.tsv with the STAR header) "
            f"or HTSeq files ({', '.join('*' + s for s in HTSEQ_SUFFIXES[::2])}); "
            "for a matrix, point the catalog entry at the file",
        )

    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith("."))

    def star_files(self) -> dict[str, Path]:
        """Base file name -> path of every GDC STAR file under the folder."""
        return self._by_name([p for p in self._files() if p.name.endswith(STAR_SUFFIX) and _is_star(p)])

    def htseq_files(self) -> dict[str, Path]:
        """Base file name -> path of every HTSeq file under the folder."""
        return self._by_name([p for p in self._files() if p.name.endswith(HTSEQ_SUFFIXES)])

    def _by_name(self, paths: list[Path]) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for path in paths:
            if path.name in out:
                raise InputDataError(
                    self.path,
                    f"two files named {path.name} in different sub-folders ({out[path.name].parent}, {path.parent})",
                )
            out[path.name] = path
        return out


class TcgaDownloadDataset(AbstractDataset[dict, TcgaDownload]):
    """The TCGA expression input: a folder (GDC STAR or HTSeq download, as downloaded) or one matrix file.

    ``load`` returns a :class:`TcgaDownload`; the node reads it in the form ``data_engineering.tcga.format``
    says (``auto`` detects it). ``save`` (the embedded generator only) takes ``{relative name: STAR frame}``
    and replaces the folder as a whole: written to a temporary folder beside it, then swapped in.

    Example catalog entries::

        tcga_expression_raw:                     # a GDC download folder
          type: gb_kedro.datasets.TcgaDownloadDataset
          path: data/01_raw/tcga/star_counts
        tcga_expression_raw:                     # or a matrix
          type: gb_kedro.datasets.TcgaDownloadDataset
          path: /data/tcga/TCGA-GBM.htseq_fpkm-uq.tsv.gz
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(PurePosixPath(path))
        self.metadata = metadata

    def load(self) -> TcgaDownload:
        if not self._path.exists():
            raise InputDataError(self._path, "not found (a GDC STAR/HTSeq folder or an expression matrix file)")
        return TcgaDownload(self._path)

    def save(self, data: dict[str, pd.DataFrame]) -> None:
        parent = self._path.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self._path.name}.", dir=parent))
        try:
            for name, genes in data.items():
                relative = name if name.endswith(STAR_SUFFIX) else name + STAR_SUFFIX
                write_star_counts(genes, tmp / relative, summary=genes.attrs.get("summary"))
            old = parent / f".{self._path.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            if self._path.exists():
                self._path.rename(old)
            tmp.rename(self._path)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def check_input(self) -> None:
        """Raise :class:`InputDataError` now (before any node runs) if the path is missing or holds no
        readable TCGA expression files."""
        self.load().detect_format()

    def _exists(self) -> bool:
        return self._path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


__all__ = ["HTSEQ_KINDS", "TcgaDownload", "TcgaDownloadDataset", "read_htseq"]

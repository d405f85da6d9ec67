"""Kedro datasets for the file formats gb-kedro reads and writes.

Every dataset here
- stops with :class:`~gb_kedro.errors.InputDataError` naming the file and the problem (missing file,
  wrong header, unreadable content) instead of a parser traceback;
- stamps ``DataFrame.attrs["source"]`` with the file it read, so nodes that validate across inputs
  (sample sheet vs. expression columns, ...) can name the file too;
- writes atomically: to a temporary file beside the target, then ``os.replace``, so a failed or
  interrupted save never leaves a half-written file over a good one.
"""

from gb_kedro.datasets.atomic import atomic_path
from gb_kedro.datasets.figures import FigureDataset
from gb_kedro.datasets.patch_pixels import PatchPixels, PatchPixelsDataset
from gb_kedro.datasets.patch_store import PatchStore, PatchStoreDataset, read_features, write_features
from gb_kedro.datasets.slides import PyramidTiffDataset
from gb_kedro.datasets.star_counts import STAR_COLUMNS, STAR_SUMMARY_ROWS, StarCountsDataset
from gb_kedro.datasets.table import JSONDataset, TableDataset, TextDataset
from gb_kedro.datasets.tcga import TcgaDownload, TcgaDownloadDataset
from gb_kedro.datasets.torch_model import TorchModelDataset

__all__ = [
    "FigureDataset",
    "STAR_COLUMNS",
    "STAR_SUMMARY_ROWS",
    "JSONDataset",
    "PatchPixels",
    "PatchPixelsDataset",
    "PatchStore",
    "PatchStoreDataset",
    "PyramidTiffDataset",
    "StarCountsDataset",
    "TableDataset",
    "TcgaDownload",
    "TcgaDownloadDataset",
    "TextDataset",
    "TorchModelDataset",
    "atomic_path",
    "read_features",
    "write_features",
]

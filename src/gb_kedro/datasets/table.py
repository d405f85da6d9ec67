"""Tables (CSV / TSV / parquet, chosen by suffix) and JSON documents."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset
from kedro_datasets._typing import JSONPreview, TablePreview

from gb_kedro.datasets.atomic import LocalFileDataset, atomic_path
from gb_kedro.errors import InputDataError, listed

_SEPARATORS = {".tsv": "\t", ".txt": "\t", ".tab": "\t", ".csv": ","}


def read_table(path: str | Path, *, required_columns: list[str] | None = None, **read_args: Any) -> pd.DataFrame:
    """Read a CSV/TSV/parquet table, naming the file in every error.

    Args:
        path: ``.csv``, ``.tsv``/``.txt``/``.tab`` (tab-separated) or ``.parquet``; ``.gz`` allowed for text.
        required_columns: columns that must be present (checked after reading).
        read_args: passed to ``pandas.read_csv`` / ``pandas.read_parquet``.
    """
    path = Path(path)
    if not path.exists():
        raise InputDataError(path, "file not found")
    if path.is_dir():
        raise InputDataError(path, "expected a file, found a directory")
    suffixes = [s.lower() for s in path.suffixes]
    kind = (
        suffixes[-2]
        if suffixes and suffixes[-1] in {".gz", ".bz2", ".xz", ".zip"} and len(suffixes) > 1
        else (suffixes[-1] if suffixes else "")
    )
    try:
        if kind == ".parquet":
            frame = pd.read_parquet(path, **read_args)
        else:
            args = {"sep": _SEPARATORS.get(kind, "\t"), "low_memory": False}
            args.update(read_args)
            frame = pd.read_csv(path, **args)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputDataError(path, f"cannot be parsed as a {kind or 'tab-separated'} table ({exc})") from exc
    if frame.empty and frame.columns.size == 0:
        raise InputDataError(path, "the file is empty")
    if required_columns:
        missing = [c for c in required_columns if c not in frame.columns]
        if missing:
            raise InputDataError(
                path,
                f"missing required column(s) {missing}; found columns {listed(frame.columns, 12)}",
            )
    if kind != ".parquet" or "source" not in frame.attrs:
        # a parquet the project wrote keeps the user's file it was derived from (pandas stores attrs), so
        # errors raised on intermediate data name that file, not data/02_intermediate/*.parquet
        frame.attrs["source"] = str(path)
    return frame


def write_table(frame: pd.DataFrame, path: str | Path, **write_args: Any) -> None:
    """Write a table atomically; format from the suffix (parquet, csv, tsv)."""
    path = Path(path)
    kind = path.suffix.lower()
    with atomic_path(path) as tmp:
        if kind == ".parquet":
            frame.to_parquet(tmp, **write_args)
        else:
            args = {"sep": _SEPARATORS.get(kind, "\t"), "index": False}
            args.update(write_args)
            frame.to_csv(tmp, **args)


def checked_sheet(frame: pd.DataFrame, required: list[str], id_column: str, source: str) -> pd.DataFrame:
    """A copy of a sample sheet / manifest with the ``required`` columns as text and unique ``id_column``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputDataError(source, f"missing required column(s) {missing}")
    out = frame.copy()
    for column in required:
        out[column] = out[column].astype(str)
    no_duplicates(out, id_column, source)
    return out


def no_duplicates(frame: pd.DataFrame, column: str, source: str) -> None:
    dup = frame[column][frame[column].duplicated()]
    if len(dup):
        raise InputDataError(source, f"duplicate {column} {dup.iloc[0]!r} ({len(dup)} duplicated value(s))")


class TableDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """A local CSV / TSV / parquet table (format from the file suffix).

    Example catalog entry::

        cohort_sample_sheet:
          type: gb_kedro.datasets.TableDataset
          filepath: data/01_raw/cohort/sample_sheet.tsv
          required_columns: [sample_id, patient_id, lineage_id]
    """

    def __init__(
        self,
        filepath: str,
        required_columns: list[str] | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ):
        self._filepath = Path(PurePosixPath(filepath))
        self._required = list(required_columns or [])
        self._missing_ok = missing_ok
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        """The table; with ``missing_ok`` an absent file loads as an empty table with the required columns
        (optional inputs, e.g. planted truth that only the embedded cohort has)."""
        if self._missing_ok and not self._filepath.exists():
            empty = pd.DataFrame(columns=self._required)
            empty.attrs.update(source=str(self._filepath), missing=True)
            return empty
        return read_table(self._filepath, required_columns=self._required, **self._load_args)

    def save(self, data: pd.DataFrame) -> None:
        write_table(data, self._filepath, **self._save_args)

    def check_input(self) -> None:
        """Before a run reads it: the file is there (unless optional) and has the required columns (its header
        only is read), so a missing column stops the run at once, not after hours of training."""
        if self._missing_ok and not self._filepath.exists():
            return
        if not self._filepath.exists():
            raise InputDataError(self._filepath, "file not found")
        if self._required:
            if self._filepath.suffix.lower() == ".parquet":
                import pyarrow.parquet

                columns = list(pyarrow.parquet.read_schema(self._filepath).names)
            else:
                columns = list(read_table(self._filepath, **{**self._load_args, "nrows": 0}).columns)
            missing = [c for c in self._required if c not in columns]
            if missing:
                raise InputDataError(
                    self._filepath,
                    f"missing required column(s) {missing}; found columns {listed(columns, 12)}",
                )

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "required_columns": self._required}

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first rows, as kedro-viz's table preview (the return annotation tells kedro-viz the kind)."""
        frame = self.load().head(nrows)  # an optional input that is absent previews as its empty table
        return TablePreview(json.loads(frame.to_json(orient="split", index=False, default_handler=str)))


class JSONDataset(LocalFileDataset):
    """A JSON document, written atomically (metrics, manifests, marker files); with ``missing_ok`` an absent
    file loads as an empty document (an optional input)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None, missing_ok: bool = False):
        super().__init__(filepath, metadata)
        self._missing_ok = missing_ok

    def load(self) -> dict:
        if self._missing_ok and not self._filepath.exists():
            return {}
        try:
            return json.loads(self._require_file().read_text())
        except json.JSONDecodeError as exc:
            raise InputDataError(self._filepath, f"not valid JSON ({exc})") from exc

    def save(self, data: dict) -> None:
        with atomic_path(self._filepath) as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")

    def preview(self) -> JSONPreview:
        """The document, as kedro-viz's JSON preview (metrics, summaries; an absent optional one: ``{}``)."""
        if self._missing_ok and not self._filepath.exists():
            return JSONPreview("{}")
        return JSONPreview(self._require_file().read_text())


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class TextDataset(LocalFileDataset):
    """A text file (GMT gene sets, markdown tables), written atomically."""

    def load(self) -> str:
        return self._require_file().read_text()

    def save(self, data: str) -> None:
        with atomic_path(self._filepath) as tmp:
            tmp.write_text(data)

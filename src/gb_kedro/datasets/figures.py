"""Figures: saved like kedro-datasets' ``MatplotlibDataset`` (so kedro-viz previews them), loaded back as
PNG bytes (a single file) or ``{name: bytes}`` (a folder of figures), so downstream nodes (the HTML report)
can use them without re-plotting."""

from __future__ import annotations

from kedro.io.core import get_filepath_str
from kedro_datasets.matplotlib import MatplotlibDataset

from gb_kedro.errors import InputDataError


class FigureDataset(MatplotlibDataset):
    def load(self) -> bytes | dict[str, bytes]:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        if not self._fs.exists(path):
            raise InputDataError(path, "figure not found: run the pipeline that draws it first")
        if self._fs.isdir(path):
            out = {}
            for name in sorted(self._fs.ls(path, detail=False)):
                with self._fs.open(name, mode="rb") as f:
                    out[name.rsplit("/", 1)[-1]] = f.read()
            return out
        with self._fs.open(path, mode="rb") as f:
            return f.read()

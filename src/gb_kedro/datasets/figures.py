"""Figures: saved like kedro-datasets' ``MatplotlibDataset`` (so kedro-viz previews them), loaded back as
PNG bytes (a single file) or ``{name: bytes}`` (a folder of figures), so downstream nodes (the HTML report)
can use them without re-plotting."""

from __future__ import annotations

import base64

from kedro.io.core import get_filepath_str
from kedro_datasets._typing import ImagePreview
from kedro_datasets.matplotlib import MatplotlibDataset

from gb_kedro.errors import InputDataError


class FigureDataset(MatplotlibDataset):
    def preview(self) -> ImagePreview:
        """kedro-viz preview: the figure, or the first figure of a folder of figures."""
        data = self.load()
        png = next(iter(data.values())) if isinstance(data, dict) else data
        return ImagePreview(base64.b64encode(png).decode("utf-8"))

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

"""Whole-slide image files."""

from __future__ import annotations

from typing import Any

from gb_kedro.datasets.atomic import LocalFileDataset, atomic_path


class PyramidTiffDataset(LocalFileDataset):
    """A pyramidal JPEG-tiled TIFF that OpenSlide opens (generic-tiff).

    ``save`` takes a :class:`gb_kedro.synthetic.slides.Scene` and renders it strip by strip (bounded
    memory, written atomically); ``load`` returns an ``openslide.OpenSlide`` (close it when done).
    Use as the ``dataset`` of a ``partitions.PartitionedDataset`` for a folder of slides.
    """

    def __init__(self, filepath: str, downsamples: list[int] | None = None, quality: int = 90, metadata: dict[str, Any] | None = None):
        super().__init__(filepath, metadata)
        self._downsamples = tuple(downsamples or (1, 4, 16))
        self._quality = quality

    def load(self):
        from gb_kedro.slides.tiling import open_slide

        return open_slide(self._filepath)

    def save(self, data) -> None:
        from gb_kedro.synthetic.slides import write_pyramid_tiff

        with atomic_path(self._filepath) as tmp:
            write_pyramid_tiff(tmp, data, downsamples=self._downsamples, quality=self._quality)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "downsamples": self._downsamples}

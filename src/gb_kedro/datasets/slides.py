"""Whole-slide image files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gb_kedro.datasets.atomic import LocalFileDataset, atomic_path
from gb_kedro.errors import InputDataError


class PyramidTiffDataset(LocalFileDataset):
    """A pyramidal JPEG-tiled TIFF that OpenSlide opens (generic-tiff).

    ``save`` takes a scene (see :func:`write_pyramid_tiff`) and renders it strip by strip (bounded
    memory, written atomically); ``load`` returns an ``openslide.OpenSlide`` (close it when done).
    Use as the ``dataset`` of a ``partitions.PartitionedDataset`` for a folder of slides.
    """

    def __init__(
        self,
        filepath: str,
        downsamples: list[int] | None = None,
        quality: int = 90,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(filepath, metadata)
        self._downsamples = tuple(downsamples or (1, 4, 16))
        self._quality = quality

    def load(self):
        return open_slide(self._filepath)

    def save(self, data) -> None:
        with atomic_path(self._filepath) as tmp:
            write_pyramid_tiff(tmp, data, downsamples=self._downsamples, quality=self._quality)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "downsamples": self._downsamples}


def open_slide(path: str | Path, slide_id: str | None = None):
    """Open a slide with OpenSlide; a missing, corrupt or unsupported file raises :class:`InputDataError`."""
    import openslide

    path = Path(path)
    name = f"slide {slide_id} ({path})" if slide_id else str(path)
    if not path.exists():
        raise InputDataError(name, "file not found")
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        raise InputDataError(name, "not a slide format OpenSlide can read (unsupported or corrupt file)") from exc
    except openslide.OpenSlideError as exc:
        raise InputDataError(name, f"OpenSlide cannot read it (corrupt file?): {exc}") from exc


def write_pyramid_tiff(
    path, scene, downsamples=(1, 4, 16), tile: int = 256, strip: int = 512, quality: int = 90
) -> None:
    """Render ``scene`` strip by strip into a JPEG-tiled pyramidal TIFF.

    ``scene``: any object with ``spec`` (``slide_id``, ``width``, ``height``, ``mpp``) and
    ``render(level, x, y, width, height) -> uint8 [height, width, 3]`` (e.g. a synthetic ``Scene``).

    Each level is its own top-level page (``subfiletype`` 0 for level 0, 1 for the others) with
    resolution tags, which OpenSlide's generic-tiff driver reads as a pyramid with known microns per pixel.
    Memory: one strip of level 0 plus the (small) lower levels.
    """
    import tifffile

    spec = scene.spec
    width, height = spec.width, spec.height
    if width % (tile * 1) or height % tile or strip % max(downsamples) or strip % tile:
        raise ValueError(f"slide size {width}x{height} must be a multiple of the tile size {tile}")
    lower = {ds: np.zeros((height // ds, width // ds, 3), np.uint8) for ds in downsamples[1:]}
    px_per_cm = 1e4 / spec.mpp

    def tiles():
        from tqdm.auto import tqdm

        starts = range(0, height, strip)
        for y0 in tqdm(
            starts,
            desc=f"Rendering {spec.slide_id}",
            unit="strip",
            leave=False,
            disable=True if len(starts) < 16 else None,
        ):
            h = min(strip, height - y0)
            rgb = scene.render(0, y0, width, h)
            for ds, arr in lower.items():
                block = (
                    rgb[: h - h % ds, : width - width % ds].reshape(h // ds, ds, width // ds, ds, 3).mean(axis=(1, 3))
                )
                arr[y0 // ds : y0 // ds + block.shape[0]] = block.astype(np.uint8)
            for ty in range(0, h, tile):
                for tx in range(0, width, tile):
                    yield rgb[ty : ty + tile, tx : tx + tile]

    options = dict(
        tile=(tile, tile),
        compression="jpeg",
        compressionargs={"level": quality},
        photometric="rgb",
        resolutionunit="CENTIMETER",
    )
    with tifffile.TiffWriter(path, bigtiff=width * height > 2**31) as tif:
        tif.write(
            tiles(),
            shape=(height, width, 3),
            dtype=np.uint8,
            subfiletype=0,
            resolution=(px_per_cm, px_per_cm),
            description=f"gb-kedro synthetic slide {spec.slide_id}",
            **options,
        )
        for ds in downsamples[1:]:
            tif.write(lower[ds], subfiletype=1, resolution=(px_per_cm / ds, px_per_cm / ds), **options)

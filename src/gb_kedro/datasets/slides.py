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
    """Open a slide: pyramidal OME-TIFF (QuPath, bfconvert) with tifffile (:class:`OmeTiffSlide`), every other
    format with OpenSlide. A missing, corrupt or unsupported file raises :class:`InputDataError`."""
    import openslide

    path = Path(path)
    name = f"slide {slide_id} ({path})" if slide_id else str(path)
    if not path.exists():
        raise InputDataError(name, "file not found")
    if path.name.lower().endswith((".ome.tif", ".ome.tiff", ".ome.btf")) or _is_ome(path):
        return OmeTiffSlide(path, name)
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        raise InputDataError(name, "not a slide format OpenSlide can read (unsupported or corrupt file)") from exc
    except openslide.OpenSlideError as exc:
        raise InputDataError(name, f"OpenSlide cannot read it (corrupt file?): {exc}") from exc


def _is_ome(path: Path) -> bool:
    """A TIFF whose first page carries OME-XML (OpenSlide sees at most its first level)."""
    if path.suffix.lower() not in (".tif", ".tiff", ".btf"):
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.is_ome)
    except Exception:  # not a TIFF tifffile reads: OpenSlide decides
        return False


def read_tile(filehandle, page, index: int) -> np.ndarray:
    """Tile ``index`` of a tiled TIFF page (tifffile), decoded: RGB uint8 ``[tile_height, tile_width, 3]``."""
    decode = page.decode  # built first: building it may move the file position
    filehandle.seek(page.dataoffsets[index])
    data = filehandle.read(page.databytecounts[index])
    tile, _, _ = decode(data, index, jpegtables=page.jpegtables)
    return tile[0, :, :, :3]


_OME_UNITS_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


class OmeTiffSlide:
    """A pyramidal OME-TIFF read with tifffile, with the part of OpenSlide's interface the project uses
    (``dimensions``, ``level_count``, ``level_dimensions``, ``level_downsamples``, ``properties`` with
    ``openslide.mpp-x``/``-y`` from the OME ``PhysicalSizeX``/``Y``, ``read_region``, ``get_thumbnail``).

    Levels are the series' pyramid (SubIFDs or further pages); RGB(A) interleaved (``YXS``) only. Regions are
    decoded tile by tile (memory: the region), untiled levels page by page.
    """

    def __init__(self, path: Path, name: str):
        import tifffile

        self._name = name
        try:
            self._tif = tifffile.TiffFile(path)
            series = self._tif.series[0]
            self._levels = [level.keyframe for level in series.levels]
        except Exception as exc:
            raise InputDataError(name, f"tifffile cannot read this OME-TIFF ({exc})") from exc
        if series.axes not in ("YXS",) or series.shape[-1] not in (3, 4):
            self._tif.close()
            raise InputDataError(
                name, f"an OME-TIFF slide must be interleaved RGB (axes YXS), not {series.axes} {series.shape}"
            )
        self.level_dimensions = tuple((int(p.imagewidth), int(p.imagelength)) for p in self._levels)
        self.dimensions = self.level_dimensions[0]
        self.level_count = len(self._levels)
        self.level_downsamples = tuple(self.dimensions[0] / w for w, _ in self.level_dimensions)
        self.properties = {"openslide.vendor": "ome-tiff (tifffile)", **self._mpp(self._tif.ome_metadata or "")}
        self._untiled: dict[int, np.ndarray] = {}

    @staticmethod
    def _mpp(xml: str) -> dict[str, str]:
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(xml)
        except ET.ParseError:
            return {}
        pixels = next((e for e in root.iter() if e.tag.endswith("Pixels")), None)
        out = {}
        for axis in ("X", "Y"):
            size = pixels.get(f"PhysicalSize{axis}") if pixels is not None else None
            unit = _OME_UNITS_UM.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"), None) if pixels is not None else None
            if size and unit:
                out[f"openslide.mpp-{axis.lower()}"] = repr(float(size) * unit)
        return out

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]):
        """RGBA PIL image of ``size`` at ``level``, top-left ``location`` in level-0 pixels (outside = transparent)."""
        from PIL import Image

        x0 = int(round(location[0] / self.level_downsamples[level]))
        y0 = int(round(location[1] / self.level_downsamples[level]))
        w, h = size
        out = np.zeros((h, w, 4), np.uint8)
        page = self._levels[level]
        width, height = self.level_dimensions[level]
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
        if xb > xa and yb > ya:
            out[ya - y0 : yb - y0, xa - x0 : xb - x0, :3] = self._pixels(page, level, xa, ya, xb, yb)
            out[ya - y0 : yb - y0, xa - x0 : xb - x0, 3] = 255
        return Image.fromarray(out, "RGBA")

    def _pixels(self, page, level: int, xa: int, ya: int, xb: int, yb: int) -> np.ndarray:
        if not page.is_tiled:
            if level not in self._untiled:
                self._untiled[level] = page.asarray()[..., :3]
            return self._untiled[level][ya:yb, xa:xb]
        tw, th = page.tilewidth, page.tilelength
        across = (page.imagewidth + tw - 1) // tw
        block = np.zeros((yb - ya, xb - xa, 3), np.uint8)
        for ty in range(ya // th, (yb - 1) // th + 1):
            for tx in range(xa // tw, (xb - 1) // tw + 1):
                tile = read_tile(self._tif.filehandle, page, ty * across + tx)
                sy, sx = ty * th, tx * tw
                ys, xs = max(ya, sy), max(xa, sx)
                ye, xe = min(yb, sy + th), min(xb, sx + tw)
                block[ys - ya : ye - ya, xs - xa : xe - xa] = tile[ys - sy : ye - sy, xs - sx : xe - sx]
        return block

    def get_thumbnail(self, size: tuple[int, int]):
        """An RGB thumbnail fitting in ``size`` (from the smallest level at least that large)."""
        from PIL import Image

        level = max((i for i, (w, h) in enumerate(self.level_dimensions) if w >= size[0] or h >= size[1]), default=0)
        w, h = self.level_dimensions[level]
        image = Image.fromarray(self._pixels(self._levels[level], level, 0, 0, w, h))
        image.thumbnail(size, Image.Resampling.BOX)
        return image

    def close(self) -> None:
        self._untiled.clear()
        self._tif.close()


STRIP = 512  # level-0 rows rendered at a time by write_pyramid_tiff


def write_pyramid_tiff(
    path, scene, downsamples=(1, 4, 16), tile: int = 256, strip: int = STRIP, quality: int = 90
) -> None:
    """Render ``scene`` strip by strip into a JPEG-tiled pyramidal TIFF.

    ``scene``: any object with ``spec`` (``slide_id``, ``width``, ``height``, ``mpp``) and
    ``render(x, y, width, height) -> uint8 [height, width, 3]`` at level 0 (e.g. a synthetic ``Scene``).

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

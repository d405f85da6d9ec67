"""A small cohort assembled from the real public files of ``../shared/data``, laid out as ``conf/real`` expects.

* TCGA: the real TCGA-LGG matrix (20,502 symbols x 99 primary tumours, log2 RSEM) as a one-project compendium;
* cohort: 8 of the LGG tumours as 8 lineages of 4 patients (2 lineages each), their real expression as the cohort
  matrix (genes x samples, symbols, log2) -- there is no public xenograft-lineage RNA-seq small enough to ship;
* annotation GENCODE v36, the directed OmniPath network, MSigDB Hallmark gene sets;
* slides: 3 mice per lineage, each a pyramidal JPEG-tiled TIFF at 0.5 um/px (so the pipeline resamples to 1 um/px)
  whose left half is host tissue cut from the real H&E slide (CMU-1-Small-Region) and whose right half is tumour
  cut from the real Ki67 IHC slide (DAB-brown nuclei, 1-8 % of a field): each lineage its own region of the IHC
  slide (and turn), each mouse its own jitter of it. No ``survival_days`` column (it is optional).

The point is the plumbing on real formats, not the biology: nothing here plants a link between RNA and image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

LINEAGES = 8
MICE_PER_LINEAGE = 3
SIDE = 2048  # px at 0.5 um/px: 1 mm, i.e. 4 x 4 patches of 256 um
MPP = 0.5


@dataclass(frozen=True)
class _Spec:
    slide_id: str
    width: int
    height: int
    mpp: float


class _Canvas:
    """A slide held in memory, rendered strip by strip by :func:`gb_kedro.datasets.slides.write_pyramid_tiff`."""

    def __init__(self, slide_id: str, rgb: np.ndarray):
        self.spec = _Spec(slide_id, rgb.shape[1], rgb.shape[0], MPP)
        self.rgb = rgb

    def render(self, level: int, y0: int, width: int, height: int) -> np.ndarray:
        return self.rgb[y0 : y0 + height, :width]


def _read_rgb(path: Path) -> np.ndarray:
    import openslide

    slide = openslide.OpenSlide(str(path))
    try:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))
    finally:
        slide.close()


def _fit(image: np.ndarray, height: int, width: int, y: int, x: int) -> np.ndarray:
    """A ``height`` x ``width`` crop at (y, x), the image tiled (mirrored) when it is smaller than asked."""
    reps = (-(-(y + height) // image.shape[0]), -(-(x + width) // image.shape[1]))
    rows = [
        np.concatenate([image[:: -1 if i % 2 else 1, :: -1 if j % 2 else 1] for j in range(reps[1])], axis=1)
        for i in range(reps[0])
    ]
    return np.concatenate(rows, axis=0)[y : y + height, x : x + width]


def build(shared: Path, root: Path) -> dict:
    """Write the cohort under ``root`` (conf/real's layout); returns the paths to pass as run-time parameters."""
    from gb_kedro.datasets.slides import write_pyramid_tiff

    rng = np.random.default_rng(23)
    lgg = shared / "rnaseq" / "tcga_lgg_log2_rsem_symbols.tsv"
    matrix = pd.read_csv(lgg, sep="\t")
    lineages = [f"L{i + 1:02d}" for i in range(LINEAGES)]
    (root / "cohort").mkdir(parents=True, exist_ok=True)
    cohort = matrix.iloc[:, [0, *range(20, 20 + LINEAGES)]].copy()
    cohort.columns = ["gene", *lineages]
    cohort.to_csv(root / "cohort" / "expression.tsv", sep="\t", index=False)
    patients = [f"P{i // 2 + 1}" for i in range(LINEAGES)]
    pd.DataFrame({"sample_id": lineages, "patient_id": patients, "lineage_id": lineages}).to_csv(
        root / "cohort" / "sample_sheet.tsv", sep="\t", index=False
    )

    host = _read_rgb(shared / "slides" / "cmu_small_region_he.svs")
    tumour = _read_rgb(shared / "slides" / "ki67_ihc_os2_generic_tiled.tif")
    images = root / "slides" / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (lineage, patient) in enumerate(zip(lineages, patients, strict=True)):
        turned = np.rot90(tumour, k % 4)
        base_y, base_x = rng.integers(0, max(1, turned.shape[0] - SIDE // 2)), rng.integers(0, turned.shape[1])
        for m in range(MICE_PER_LINEAGE):
            slide_id = f"{lineage}_M{m + 1}"
            left = _fit(host, SIDE, SIDE // 2, int(rng.integers(0, host.shape[0])), int(rng.integers(0, host.shape[1])))
            jitter = rng.integers(-64, 65, size=2)
            right = _fit(turned, SIDE, SIDE // 2, int(max(0, base_y + jitter[0])), int(max(0, base_x + jitter[1])))
            stain = np.clip(right.astype(float) * rng.uniform(0.92, 1.08, size=3), 0, 255).astype(np.uint8)
            write_pyramid_tiff(images / f"{slide_id}.tif", _Canvas(slide_id, np.concatenate([left, stain], axis=1)))
            rows.append(
                {
                    "slide_id": slide_id,
                    "mouse_id": slide_id,
                    "lineage_id": lineage,
                    "patient_id": patient,
                    "path": f"images/{slide_id}.tif",
                }
            )
    pd.DataFrame(rows).to_csv(root / "slides" / "manifest.tsv", sep="\t", index=False)
    return {
        "real_data_dir": str(root),
        "annotation_path": str(shared / "annotation" / "gencode_v36_genes.tsv"),
        "tcga_path": str(lgg),
        "ppi_path": str(shared / "ppi" / "omnipath_signed_directed.tsv"),
    }

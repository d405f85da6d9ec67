"""Pixel morphometry of tumour patches: the non-deep baseline the deep encoders must beat on unseen mice.

Per patch, from optical density ``OD = -log10(RGB / 255)`` (Beer-Lambert: stain amounts add up):

- **nuclei**: OD summed over the channels above the patch's own Otsu threshold (a lighter or darker slide
  segments alike), opened, specks under ``min_area`` px removed, connected components labelled;
- **tumour (human) nuclei** are the brown ones -- DAB absorbs blue more than red (``OD_B > OD_R``), haematoxylin
  the reverse -- the others are host (mouse) nuclei;
- **tumour area**: pixels whose smoothed ``OD_B - OD_G`` (brown / tan: DAB, not eosin pink) exceeds
  ``tumour_od_difference``.

Features (:data:`FEATURES`, the baseline's 20) describe the tumour nuclei's size, shape, chromatin texture, spacing, clustering
and density, and the tumour's extent, border and mixing with host nuclei -- never raw stain intensity (which
is slide identity, not lineage morphology): intensity enters only as ratios within a patch. The strong
baseline reads a richer set (:data:`EXTRA_FEATURES`: distributions, orientation order, merged nuclei, mass
displacement, fine texture, the tumour's pieces); every patch carries both (:data:`ALL_FEATURES`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.filters import threshold_otsu
from skimage.measure import regionprops_table

FEATURES = (
    "nuclei_count",  # tumour nuclei in the patch
    "nuclei_per_tumour_area",  # per 10,000 px of tumour area
    "nuclear_area_fraction",  # tumour-nucleus pixels / tumour-area pixels
    "area_mean",
    "area_median",
    "area_cv",  # std / mean of nuclear areas
    "eccentricity_mean",
    "elongation_mean",  # major / minor axis
    "solidity_mean",
    "solidity_min_quartile",  # merged (touching) nuclei lower the solidity
    "chromatin_cv",  # std / mean of OD inside nuclei (texture, not intensity)
    "chromatin_edge_ratio",  # mean OD on a nucleus' rim / in its core
    "chromatin_gradient",  # mean |grad OD| inside nuclei / mean OD inside nuclei
    "nn_distance_mean",  # nearest-neighbour distance between tumour-nucleus centroids (px)
    "nn_distance_cv",
    "clark_evans",  # mean NN distance / its expectation for random points in the tumour area (<1 clustered, >1 regular)
    "neighbours_within_radius",  # mean number of other tumour nuclei within neighbour_radius px
    "tumour_fraction",  # tumour-area pixels / patch pixels
    "tumour_border",  # tumour-area perimeter / sqrt(area): compact (low) vs infiltrative (high)
    "host_nuclei_fraction",  # host (mouse) nuclei / all nuclei: tumour mixed with brain
)

# The richer set of the strong baseline (the ``morphometry_classifier`` row): distributions rather than means,
# orientation order, merged nuclei, CellProfiler's mass displacement (how far the stain's centre of mass sits
# from the nucleus' centre), fine chromatin texture, density over the whole patch, the tumour's pieces.
EXTRA_FEATURES = (
    "area_q25",
    "area_q75",
    "elongation_q25",
    "elongation_median",
    "elongation_q75",
    "elongation_cv",
    "orientation_coherence",  # |mean of exp(2i theta)| over nuclei: 1 = aligned, 0 = any direction
    "circularity_mean",  # 4 pi area / perimeter^2
    "merged_share",  # share of nuclei with solidity under MERGED_SOLIDITY (touching nuclei)
    "mass_displacement_mean",  # |OD-weighted centroid - centroid| / equivalent radius (polarised chromatin)
    "mass_displacement_q75",
    "chromatin_laplacian",  # mean |Laplacian of OD| inside nuclei / mean OD inside nuclei (fine speckle)
    "chromatin_cv_nuclear_median",  # median over nuclei of each nucleus' own OD std / mean
    "nn_distance_q25",
    "nn_distance_median",
    "nuclei_per_patch_area",  # tumour nuclei per 10,000 px of patch
    "host_nuclei_per_patch_area",  # host nuclei per 10,000 px of patch
    "tumour_components",  # connected pieces of tumour area
    "tumour_largest_share",  # the largest piece / tumour area
    "neighbours_within_2radius",  # mean number of other tumour nuclei within 2 x neighbour_radius px
)
ALL_FEATURES = FEATURES + EXTRA_FEATURES
MERGED_SOLIDITY = 0.85


def _otsu(values: np.ndarray) -> float:
    return float(threshold_otsu(values)) if np.ptp(values) > 0 else float(values.max())


def patch_features(
    rgb: np.ndarray, min_area: int, neighbour_radius: float, tumour_od_difference: float, smooth_px: float
) -> np.ndarray:
    """:data:`ALL_FEATURES` of one RGB uint8 patch ``[H, W, 3]`` (float64; NaN where undefined, e.g. no nucleus)."""
    od = -np.log10(np.maximum(rgb.astype(np.float32), 1.0) / 255.0)
    total = od.sum(-1)
    n_px = float(total.size)
    tumour = ndimage.gaussian_filter(od[..., 2] - od[..., 1], smooth_px) > tumour_od_difference
    labels, n_all = ndimage.label(ndimage.binary_opening(total > _otsu(total)))
    out = dict.fromkeys(ALL_FEATURES, np.nan)
    tumour_area = float(tumour.sum())
    out["tumour_fraction"] = tumour_area / n_px
    if tumour_area:
        edge = tumour ^ ndimage.binary_erosion(tumour)
        out["tumour_border"] = float(edge.sum()) / np.sqrt(tumour_area)
        pieces, n_pieces = ndimage.label(tumour)
        out["tumour_components"] = float(n_pieces)
        out["tumour_largest_share"] = float(np.bincount(pieces.ravel())[1:].max()) / tumour_area
    if n_all:
        idx = np.arange(1, n_all + 1)
        size = ndimage.sum_labels(np.ones_like(total), labels, idx)
        brown = ndimage.mean(od[..., 2], labels, idx) > ndimage.mean(od[..., 0], labels, idx)
        big = size >= min_area
        keep = np.concatenate([[False], big & brown])
        out["host_nuclei_fraction"] = float((big & ~brown).sum()) / max(int(big.sum()), 1)
        out["host_nuclei_per_patch_area"] = 1e4 * float((big & ~brown).sum()) / n_px
        labels, n = ndimage.label(keep[labels])
    else:
        n = 0
    out["nuclei_count"] = float(n)
    out["nuclei_per_tumour_area"] = 1e4 * n / max(tumour_area, 1.0)
    out["nuclear_area_fraction"] = float((labels > 0).sum()) / max(tumour_area, 1.0)
    out["nuclei_per_patch_area"] = 1e4 * n / n_px
    if n == 0:
        return np.array([out[f] for f in ALL_FEATURES])
    props = regionprops_table(
        labels,
        intensity_image=total,
        properties=(
            "area",
            "eccentricity",
            "solidity",
            "axis_major_length",
            "axis_minor_length",
            "centroid",
            "centroid_weighted",
            "orientation",
            "perimeter",
            "intensity_mean",
            "intensity_std",
        ),
    )
    area = props["area"].astype(float)
    out["area_mean"], out["area_median"] = area.mean(), float(np.median(area))
    out["area_cv"] = area.std() / area.mean()
    out["eccentricity_mean"] = float(props["eccentricity"].mean())
    elongation = props["axis_major_length"] / np.maximum(props["axis_minor_length"], 1.0)
    out["elongation_mean"] = float(elongation.mean())
    out["solidity_mean"] = float(props["solidity"].mean())
    out["solidity_min_quartile"] = float(np.quantile(props["solidity"], 0.25))
    out["area_q25"], out["area_q75"] = (float(q) for q in np.quantile(area, [0.25, 0.75]))
    out["elongation_q25"], out["elongation_median"], out["elongation_q75"] = (
        float(q) for q in np.quantile(elongation, [0.25, 0.5, 0.75])
    )
    out["elongation_cv"] = float(elongation.std() / elongation.mean())
    out["orientation_coherence"] = float(np.abs(np.exp(2j * props["orientation"]).mean()))
    out["circularity_mean"] = float((4 * np.pi * area / np.maximum(props["perimeter"], 1.0) ** 2).mean())
    out["merged_share"] = float((props["solidity"] < MERGED_SOLIDITY).mean())
    shift = np.hypot(
        props["centroid_weighted-0"] - props["centroid-0"], props["centroid_weighted-1"] - props["centroid-1"]
    )
    displacement = shift / np.sqrt(area / np.pi)
    out["mass_displacement_mean"] = float(displacement.mean())
    out["mass_displacement_q75"] = float(np.quantile(displacement, 0.75))
    out["chromatin_cv_nuclear_median"] = float(
        np.median(props["intensity_std"] / np.maximum(props["intensity_mean"], 1e-6))
    )
    inside = labels > 0
    t_in = total[inside]
    mean_t = max(float(t_in.mean()), 1e-6)
    out["chromatin_cv"] = float(t_in.std()) / mean_t
    core = ndimage.binary_erosion(inside, iterations=2)
    rim = inside & ~core
    if core.any() and rim.any():
        out["chromatin_edge_ratio"] = float(total[rim].mean()) / max(float(total[core].mean()), 1e-6)
    gy, gx = np.gradient(total)
    out["chromatin_gradient"] = float(np.hypot(gx, gy)[inside].mean()) / mean_t
    out["chromatin_laplacian"] = float(np.abs(ndimage.laplace(total))[core if core.any() else inside].mean()) / mean_t
    if n >= 2:
        points = np.column_stack([props["centroid-0"], props["centroid-1"]])
        tree = cKDTree(points)
        dist, _ = tree.query(points, k=2)
        nn = dist[:, 1]
        out["nn_distance_mean"], out["nn_distance_cv"] = nn.mean(), nn.std() / max(nn.mean(), 1e-6)
        out["clark_evans"] = nn.mean() / (0.5 / np.sqrt(n / max(tumour_area, float(inside.sum()), 1.0)))
        out["nn_distance_q25"], out["nn_distance_median"] = (float(q) for q in np.quantile(nn, [0.25, 0.5]))
        for key, radius in (
            ("neighbours_within_radius", neighbour_radius),
            ("neighbours_within_2radius", 2 * neighbour_radius),
        ):
            out[key] = float(np.mean(tree.query_ball_point(points, radius, return_length=True) - 1))
    return np.array([out[f] for f in ALL_FEATURES])


def morphometry(
    patches: np.ndarray, min_area: int, neighbour_radius: float, tumour_od_difference: float, smooth_px: float
) -> np.ndarray:
    """:data:`ALL_FEATURES` of uint8 patches ``[N, 3, S, S]`` in this process -> ``[N, F]`` float32; NaN (no
    nucleus, one nucleus) filled with the column's median over the patches (0 where all are NaN)."""
    options = (min_area, neighbour_radius, tumour_od_difference, smooth_px)
    _, raw = chunk_features((np.asarray(patches), 0, len(patches), options))
    return fill_missing(raw).astype(np.float32)


def chunk_features(job: tuple) -> tuple[int, np.ndarray]:
    """One unit of parallel work: ``(source, start, stop, options)`` -> ``(start, raw features)`` of patches
    ``start:stop``; ``source`` is the path of a ``.npy`` patch array (memory-mapped, read by the worker) or
    the patches themselves. Missing values are filled once all chunks are back (:func:`fill_missing`)."""
    source, start, stop, options = job
    patches = np.load(source, mmap_mode="r")[start:stop] if isinstance(source, str) else source
    out = np.empty((stop - start, len(ALL_FEATURES)))
    for i in range(stop - start):
        out[i] = patch_features(np.moveaxis(np.asarray(patches[i]), 0, -1), *options)
    return start, out


def fill_missing(values: np.ndarray) -> np.ndarray:
    """NaN replaced by its column's median (0 for an all-NaN column)."""
    values = np.array(values, dtype=float)
    medians = np.nan_to_num(np.nanmedian(np.where(np.isnan(values).all(0), 0.0, values), axis=0))
    rows, cols = np.nonzero(np.isnan(values))
    values[rows, cols] = medians[cols]
    return values


def feature_frame(index: pd.DataFrame, values: np.ndarray, columns=ALL_FEATURES) -> pd.DataFrame:
    """The index columns of each patch beside its per-patch features (``columns``: their names, by default one per
    :data:`ALL_FEATURES`; the colour features use it too)."""
    cols = [
        c for c in ("slide_id", "x", "y", "lineage_id", "patient_id", "mouse_id", "split", "held_out") if c in index
    ]
    frame = index[cols].reset_index(drop=True)
    return pd.concat([frame, pd.DataFrame(values, columns=list(columns))], axis=1)


def numbered_columns(frame: pd.DataFrame, prefix: str) -> list[str]:
    """The ``<prefix><i>`` columns of a per-patch table (``e0, e1, ...`` of an embedding; ``z0, ...`` of a projection)."""
    return [c for c in frame.columns if c.startswith(prefix) and c[len(prefix) :].isdigit()]

"""Tumour (DAB-brown) pixels in HSL, hue in DEGREES.

The authors' released thresholds: hue 35 +- 15 deg (0-360 scale), lightness in [0.05, 0.8], saturation
unused; a patch is a tumour patch when more than 20 % of its pixels are brown. (OpenCV's 8-bit HLS stores
hue as 0-180; nothing here uses it.)

:func:`brown_mask` is exact integer arithmetic on uint8 RGB, with no float HSL conversion. A hue in
[20, 50] deg lies in the sector where R is the maximum and B the minimum, where
``hue = 60 * (G - B) / (R - B)``, so ``20 <= hue <= 50`` is ``R - B <= 3 (G - B)`` and
``6 (G - B) <= 5 (R - B)``; lightness ``(max + min) / 510`` in [0.05, 0.8] is ``25.5 <= R + B <= 408``.
Grey pixels (R == B, hue undefined) are not brown. :func:`brown_mask_float` is the textbook float
conversion; the two agree pixel for pixel (tested).
"""

from __future__ import annotations

import numpy as np

HUE_CENTRE = 35.0
HUE_MARGIN = 15.0
LIGHTNESS = (0.05, 0.8)


def _check_default(hue_centre: float, hue_margin: float, lightness: tuple[float, float]) -> bool:
    return (hue_centre, hue_margin, tuple(lightness)) == (HUE_CENTRE, HUE_MARGIN, LIGHTNESS)


def brown_mask(
    rgb: np.ndarray, hue_centre: float = HUE_CENTRE, hue_margin: float = HUE_MARGIN, lightness=LIGHTNESS
) -> np.ndarray:
    """Boolean mask of brown pixels of a uint8 RGB array ``[..., 3]`` (any leading shape)."""
    if (
        not _check_default(hue_centre, hue_margin, lightness)
        or hue_centre - hue_margin < 0
        or hue_centre + hue_margin > 60
    ):
        return brown_mask_float(rgb, hue_centre, hue_margin, lightness)
    r = rgb[..., 0].astype(np.int16)
    g = rgb[..., 1].astype(np.int16)
    b = rgb[..., 2].astype(np.int16)
    rb = r - b
    gb = g - b
    s = r + b
    return (rb > 0) & (g <= r) & (gb >= 0) & (rb <= 3 * gb) & (6 * gb <= 5 * rb) & (2 * s >= 51) & (s <= 408)


def brown_mask_float(
    rgb: np.ndarray, hue_centre: float = HUE_CENTRE, hue_margin: float = HUE_MARGIN, lightness=LIGHTNESS
) -> np.ndarray:
    """Reference implementation: float HSL (hue in degrees), then the interval test."""
    x = rgb.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx = x.max(axis=-1)
    mn = x.min(axis=-1)
    chroma = mx - mn
    light = (mx + mn) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        hue = (
            np.where(
                mx == r,
                np.mod((g - b) / chroma, 6.0),
                np.where(mx == g, (b - r) / chroma + 2.0, (r - g) / chroma + 4.0),
            )
            * 60.0
        )
    hue = np.where(chroma > 0, hue, np.nan)
    diff = np.abs(np.mod(hue - hue_centre + 180.0, 360.0) - 180.0)
    return (diff <= hue_margin + 1e-9) & (light >= lightness[0] - 1e-12) & (light <= lightness[1] + 1e-12)


def brown_ratio(rgb: np.ndarray, **thresholds) -> float:
    """Fraction of brown pixels of one RGB image."""
    return float(brown_mask(rgb, **thresholds).mean())


def patch_brown_ratios(strip: np.ndarray, size: int, **thresholds) -> np.ndarray:
    """Brown ratio of every ``size`` x ``size`` patch of a strip ``[size, n * size, 3]`` -> ``[n]``."""
    h, w, _ = strip.shape
    mask = brown_mask(strip, **thresholds)
    return mask.reshape(h, w // size, size).sum(axis=(0, 2)) / float(size * size)


def tissue_mask(rgb: np.ndarray, max_min_channel: int = 215) -> np.ndarray:
    """Tissue (not glass) pixels of a low-resolution image: some channel darker than ``max_min_channel``."""
    return rgb.min(axis=-1) < max_min_channel

"""Non-deep baselines that every learned model is reported beside."""

from __future__ import annotations

import numpy as np


def colour_histogram_features(patches: np.ndarray, bins: int = 16, chunk: int = 64) -> np.ndarray:
    """Per-patch colour statistics: a ``bins``-bin histogram of each RGB channel (fractions of pixels),
    plus the channel means and standard deviations, all in [0, 1].

    The histogram is ``numpy.histogram``'s with ``bins`` equal bins over [0, 256], counted for every patch at once
    (a lookup from pixel value to bin, then ``bincount``), ``chunk`` patches at a time (memory).

    Args:
        patches: uint8 ``[N, H, W, 3]`` (a view of channel-first patches is fine).

    Returns:
        ``[N, 3 * bins + 6]`` float32.
    """
    edges = np.linspace(0, 256, bins + 1)
    # numpy.histogram's rule: [e_i, e_i+1), the last bin closed; for the 256 possible values, once
    lut = np.clip(np.searchsorted(edges, np.arange(256), side="right") - 1, 0, bins - 1)
    n = patches.shape[0]
    out = np.empty((n, 3 * bins + 6), np.float32)
    for a in range(0, n, chunk):
        flat = np.asarray(patches[a : a + chunk]).reshape(-1, patches.shape[1] * patches.shape[2], 3)
        m = flat.shape[0]
        codes = lut[flat] + (np.arange(m)[:, None, None] * bins)  # [m, pixels, 3]: the bin of each value
        hist = np.concatenate(
            [np.bincount(codes[:, :, c].ravel(), minlength=m * bins).reshape(m, bins) for c in range(3)], axis=1
        )
        hist = hist / flat.shape[1]
        mean = flat.mean(axis=1) / 255.0
        std = flat.std(axis=1) / 255.0
        out[a : a + m] = np.concatenate([hist, mean, std], axis=1)
    return out

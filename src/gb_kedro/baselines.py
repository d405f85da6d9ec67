"""Non-deep baselines that every learned model is reported beside."""

from __future__ import annotations

import numpy as np


def colour_histogram_features(patches: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per-patch colour statistics: a ``bins``-bin histogram of each RGB channel (fractions of pixels),
    plus the channel means and standard deviations, all in [0, 1].

    Args:
        patches: uint8 ``[N, H, W, 3]``.

    Returns:
        ``[N, 3 * bins + 6]`` float32.
    """
    patches = np.asarray(patches)
    n = patches.shape[0]
    flat = patches.reshape(n, -1, 3)
    edges = np.linspace(0, 256, bins + 1)
    hist = np.concatenate(
        [np.stack([np.histogram(flat[i, :, c], bins=edges)[0] for i in range(n)]) for c in range(3)], axis=1
    )
    hist = hist / flat.shape[1]
    mean = flat.mean(axis=1) / 255.0
    std = flat.std(axis=1) / 255.0
    return np.concatenate([hist, mean, std], axis=1).astype(np.float32)

"""Stain-safe augmentations of RGB patches (torch, on [3, H, W] or [N, 3, H, W] tensors in [0, 1]).

A training item's random view is drawn in two steps (:mod:`gb_kedro.slides.patches`): its random numbers, drawn
per item from torch's generator in a fixed order (window, stain mixing, flip, rotation, HED jitter), then the
pixel work on the whole batch at once (:func:`stain_transfer_batch`, :func:`hed_jitter_batch` with per-item draws).
"""

from __future__ import annotations

import numpy as np
import torch

# Ruifrok & Johnston H, E, DAB optical-density vectors (rows), as scikit-image's rgb_from_hed.
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)


def hed_jitter(x: torch.Tensor, sigma: float, bias: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each stain's optical density by U(1 - sigma, 1 + sigma) and shift it by U(-bias, bias), per image of
    [3, H, W] or [N, 3, H, W] (the draws here; :func:`hed_jitter_batch` applies drawn ones)."""
    batched = x.dim() == 4
    x = x if batched else x[None]
    n = x.shape[0]
    alpha = 1.0 + (torch.rand(n, 1, 1, 3, generator=generator) * 2 - 1) * sigma
    beta = (torch.rand(n, 1, 1, 3, generator=generator) * 2 - 1) * bias
    rgb = hed_jitter_batch(x, alpha.reshape(n, 3), beta.reshape(n, 3))
    return rgb if batched else rgb[0]


class Augment:
    """Flips, 90-degree rotations and HED stain jitter (params: ``flips``, ``hed_sigma``, ``hed_bias``): what
    :func:`gb_kedro.slides.patches.draw_view` draws for a training view."""

    def __init__(self, flips: bool, hed_sigma: float, hed_bias: float):
        self.flips, self.hed_sigma, self.hed_bias = flips, hed_sigma, hed_bias


def stain_statistics(images: np.ndarray, slides: np.ndarray, n_slides: int, max_pixels: int = 200_000) -> np.ndarray:
    """Per slide, the mean and standard deviation of each stain's optical density (H, E, DAB) over the
    pixels of its patches: ``[n_slides, 2, 3]`` (slides without patches: the overall statistics).

    Args:
        images: uint8 patches ``[N, 3, S, S]``; slides: ``[N]`` slide code (0 .. n_slides - 1) of each.
    """
    rng = np.random.default_rng(0)
    out = np.zeros((n_slides, 2, 3), np.float32)
    pooled = []
    for s in range(n_slides):
        rows = np.flatnonzero(slides == s)
        if not len(rows):
            continue
        px = np.asarray(images[rows]).transpose(0, 2, 3, 1).reshape(-1, 3)
        if len(px) > max_pixels:
            px = px[rng.choice(len(px), max_pixels, replace=False)]
        od = -np.log10(np.maximum(px.astype(np.float32), 1.0) / 255.0) @ HED_FROM_RGB.numpy()
        out[s] = od.mean(0), od.std(0) + 1e-6
        pooled.append(out[s])
    fallback = np.mean(pooled, axis=0) if pooled else np.array([[0.0] * 3, [1.0] * 3], np.float32)
    out[[s for s in range(n_slides) if not (slides == s).any()]] = fallback
    return out


def _stain_density(x: torch.Tensor) -> torch.Tensor:
    """Stain densities (H, E, DAB optical density) [N, H, W, 3] of RGB images [N, 3, H, W] in [0, 1]."""
    return -torch.log10(x.clamp(min=1.0 / 255.0)).permute(0, 2, 3, 1) @ HED_FROM_RGB


def _rgb(od: torch.Tensor) -> torch.Tensor:
    """RGB images [N, 3, H, W] in [0, 1] of stain densities [N, H, W, 3] (:func:`_stain_density`'s inverse)."""
    return torch.pow(10.0, -(od @ RGB_FROM_HED)).permute(0, 3, 1, 2).clamp(0.0, 1.0)


def stain_transfer_batch(x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`stain_transfer` of a batch [N, 3, H, W], item i from stain statistics ``source[i]`` to
    ``target[i]`` ([N, 2, 3] each)."""
    src, dst = source[:, None, None], target[:, None, None]  # [N, 1, 1, 2, 3]
    return _rgb((_stain_density(x) - src[..., 0, :]) / src[..., 1, :] * dst[..., 1, :] + dst[..., 0, :])


def hed_jitter_batch(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """:func:`hed_jitter` of a batch [N, 3, H, W] with the per-item scales ``alpha`` and shifts ``beta`` [N, 3]
    already drawn."""
    return _rgb(_stain_density(x) * alpha[:, None, None] + beta[:, None, None])


def stain_transfer(x: torch.Tensor, source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """Reinhard-style transfer in stain (HED optical-density) space: each stain of ``x`` [3, H, W] in [0, 1],
    standardised by the statistics of its own slide ``source`` [2, 3] (mean, std), takes those of
    another slide ``target``. The nuclei keep their shape and texture; the slide's stain is replaced."""
    src, dst = (torch.as_tensor(np.asarray(s))[None] for s in (source, target))
    return stain_transfer_batch(x[None], src, dst)[0]


class StainMix:
    """With probability ``p``, a training patch takes the stain statistics of a random training slide
    (:func:`stain_transfer`; drawn by :func:`gb_kedro.slides.patches.draw_view`): stain stops telling slides, and
    so lineages, apart. ``statistics``: per slide, the mean and standard deviation of each stain [n_slides, 2, 3]."""

    def __init__(self, statistics: np.ndarray, p: float):
        self.statistics, self.p = statistics, p

    @classmethod
    def fit(cls, images: np.ndarray, slides: np.ndarray | None, p: float) -> StainMix | None:
        """Stain mixing over the slides of ``images`` (``slides``: slide code per image); None when off."""
        if not p or slides is None:
            return None
        return cls(stain_statistics(images, slides, int(slides.max()) + 1), p)

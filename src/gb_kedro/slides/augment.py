"""Stain-safe augmentations of RGB patches (torch, on [3, H, W] or [N, 3, H, W] tensors in [0, 1])."""

from __future__ import annotations

import numpy as np
import torch

# Ruifrok & Johnston H, E, DAB optical-density vectors (rows), as scikit-image's rgb_from_hed.
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)


def hed_jitter(x: torch.Tensor, sigma: float, bias: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each stain's optical density by U(1 - sigma, 1 + sigma) and shift it by U(-bias, bias)."""
    batched = x.dim() == 4
    x = x if batched else x[None]
    n = x.shape[0]
    od = -torch.log10(x.clamp(min=1.0 / 255.0)).permute(0, 2, 3, 1) @ HED_FROM_RGB  # [N, H, W, 3] stain densities
    alpha = 1.0 + (torch.rand(n, 1, 1, 3, generator=generator) * 2 - 1) * sigma
    beta = (torch.rand(n, 1, 1, 3, generator=generator) * 2 - 1) * bias
    rgb = torch.pow(10.0, -((od * alpha + beta) @ RGB_FROM_HED)).permute(0, 3, 1, 2).clamp(0.0, 1.0)
    return rgb if batched else rgb[0]


def flip_rotate(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random element of the dihedral group: optional horizontal flip, then 0/90/180/270-degree rotation."""
    if torch.rand(1, generator=generator).item() < 0.5:
        x = x.flip(-1)
    k = int(torch.randint(4, (1,), generator=generator))
    return torch.rot90(x, k, dims=(-2, -1))


class Augment:
    """Flips, 90-degree rotations and HED stain jitter (params: ``flips``, ``hed_sigma``, ``hed_bias``)."""

    def __init__(self, flips: bool, hed_sigma: float, hed_bias: float):
        self.flips, self.hed_sigma, self.hed_bias = flips, hed_sigma, hed_bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.flips:
            x = flip_rotate(x)
        if self.hed_sigma or self.hed_bias:
            x = hed_jitter(x, self.hed_sigma, self.hed_bias)
        return x


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


def stain_transfer(x: torch.Tensor, source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """Reinhard-style transfer in stain (HED optical-density) space: each stain of ``x`` [3, H, W] in [0, 1],
    standardised by the statistics of its own slide ``source`` [2, 3] (mean, std), takes those of
    another slide ``target``. The nuclei keep their shape and texture; the slide's stain is replaced."""
    od = -torch.log10(x.clamp(min=1.0 / 255.0)).permute(1, 2, 0) @ HED_FROM_RGB  # [H, W, 3]
    src, dst = torch.as_tensor(source), torch.as_tensor(target)
    od = (od - src[0]) / src[1] * dst[1] + dst[0]
    return torch.pow(10.0, -(od @ RGB_FROM_HED)).permute(2, 0, 1).clamp(0.0, 1.0)


class StainMix:
    """With probability ``p``, a training patch takes the stain statistics of a random training slide
    (:func:`stain_transfer`): stain stops telling slides, and so lineages, apart."""

    def __init__(self, statistics: np.ndarray, p: float):
        self.statistics, self.p = statistics, p

    @classmethod
    def fit(cls, images: np.ndarray, slides: np.ndarray | None, p: float) -> StainMix | None:
        """Stain mixing over the slides of ``images`` (``slides``: slide code per image); None when off."""
        if not p or slides is None:
            return None
        return cls(stain_statistics(images, slides, int(slides.max()) + 1), p)

    def on(self, slide: int):
        """This mix applied as coming from ``slide``: the ``stain`` callable of :func:`training_view`."""
        return lambda x: self(x, slide)

    def __call__(self, x: torch.Tensor, slide: int) -> torch.Tensor:
        if self.p <= 0 or float(torch.rand(1)) >= self.p:
            return x
        other = int(torch.randint(len(self.statistics), (1,)))
        return stain_transfer(x, self.statistics[slide], self.statistics[other])

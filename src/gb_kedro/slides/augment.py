"""Stain-safe augmentations of RGB patches (torch, on [3, H, W] or [N, 3, H, W] tensors in [0, 1])."""

from __future__ import annotations

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

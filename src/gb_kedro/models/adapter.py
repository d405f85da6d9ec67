"""The image side of the multimodal model when the patch encoder ran elsewhere (a foundation model's features).

One precomputed feature vector per patch [N, in_dim] becomes one image token [N, 1, dim]: LayerNorm (the
features' scale is the foundation model's), Linear, GELU, dropout, Linear. It stands where the ViT stands in
:class:`gb_kedro.models.multimodal.MultimodalModel` (``forward_features``; ``config.dim``), so the projections,
the contrastive alignment, the fusion (the RNA tokens attend to this one token), matching and RNA decoding are
the paper's, on frozen features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gb_kedro.models.layers import ConfigurableModel, init_weights


@dataclass
class FeatureAdapterConfig:
    in_dim: int  # the foundation model's feature width
    dim: int  # the image token's width
    dropout: float


class FeatureAdapter(ConfigurableModel):
    config_class = FeatureAdapterConfig

    def __init__(self, config: FeatureAdapterConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.LayerNorm(config.in_dim),
            nn.Linear(config.in_dim, config.dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.dim, config.dim),
        )
        self.net.apply(init_weights)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        """features [N, in_dim] -> one token [N, 1, dim]."""
        return self.net(features).unsqueeze(1)

"""Vision Transformer over the 16x16 sub-patches of a tumour patch (paper 2.3).

A 256x256 RGB patch is cut into 16x16 sub-patches (256 tokens; 64 for the 128-px CPU demo), each linearly
embedded (``stem: patchify``) or embedded by a small convolutional stem of the same stride (``stem: conv``: stride-2
3x3 convolutions, batch norm, ReLU, then a 1x1 convolution to the width: Xiao et al. 2021, "Early convolutions help
transformers see better"; the tokens are still the 16x16 sub-patches); a CLS token and learned position embeddings are added; pre-norm blocks with
``F.scaled_dot_product_attention`` (:mod:`gb_kedro.models.layers`) follow. ``forward_features`` returns all
tokens, ``forward_head`` the CLS embedding; the multimodal fusion uses the tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gb_kedro.models.layers import Block, ConfigurableModel, init_weights


@dataclass
class ViTConfig:
    img_size: int = 128
    patch_size: int = 16
    dim: int = 96
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    num_classes: int = 0  # > 0: a linear classification head on the CLS (the warm-start loss)
    grad_checkpointing: bool = False
    stem: str = "patchify"  # patchify: one linear map per sub-patch | conv: a convolutional stem of the same stride

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2


class VisionTransformer(ConfigurableModel):
    config_class = ViTConfig

    def __init__(self, config: ViTConfig):
        super().__init__()
        if config.img_size % config.patch_size:
            raise ValueError(f"img_size {config.img_size} is not a multiple of patch_size {config.patch_size}")
        self.config = config
        d = config.dim
        self.patch_embed = (
            conv_stem(d, config.patch_size)
            if config.stem == "conv"
            else nn.Conv2d(3, d, kernel_size=config.patch_size, stride=config.patch_size)
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, d))
        self.blocks = nn.ModuleList(
            [Block(d, config.num_heads, config.mlp_ratio, config.dropout) for _ in range(config.depth)]
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_classes) if config.num_classes > 0 else nn.Identity()
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [N, 3, H, W] in [0, 1] -> tokens [N, 1 + L, D] (CLS first, L = (H / 16)^2).

        ``mask`` [N, L] (bool, True = hidden; masked-image modelling): the hidden sub-patches' pixels are set to
        mid-grey before the stem (a conv stem's neighbours cannot see into them) and their tokens replaced by the
        model's ``mask_token`` [1, 1, D], which the training that masks attaches (SimMIM)."""
        if mask is not None:
            p = self.config.patch_size
            hidden = mask.reshape(len(x), 1, x.shape[2] // p, x.shape[3] // p)
            x = x.masked_fill(hidden.repeat_interleave(p, 2).repeat_interleave(p, 3), 0.5)
        x = self.patch_embed(x * 2.0 - 1.0).flatten(2).transpose(1, 2)  # [N, L, D]
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_token.to(x.dtype).expand_as(x), x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = (
                checkpoint(block, x, use_reentrant=False)
                if self.config.grad_checkpointing and self.training
                else block(x)
            )
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, 1 + L, D] -> CLS embedding [N, D]."""
        return tokens[:, 0]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``cls`` [N, D] and ``tokens`` [N, L, D]. The classification ``head`` (``num_classes`` > 0)
        holds the lineage proxies of the warm-start loss, which reads its weights directly."""
        tokens = self.forward_features(x)
        return {"cls": self.forward_head(tokens), "tokens": tokens[:, 1:]}


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, L, patch_size * patch_size * C]: the pixels of each sub-patch, in token order."""
    n, c, h, w = x.shape
    p = patch_size
    x = x.reshape(n, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)


def conv_stem(dim: int, stride: int) -> nn.Sequential:
    """log2(``stride``) 3x3 convolutions of stride 2 (batch norm, ReLU), the channels doubling up to ``dim``, then a
    1x1 convolution to ``dim``: one token per ``stride`` x ``stride`` sub-patch, as the linear patchify gives, from
    features that see pixel-scale texture first."""
    steps = stride.bit_length() - 1
    if stride != 2**steps or steps < 1:
        raise ValueError(f"a conv stem needs a power-of-two patch_size, not {stride}")
    widths = [max(dim // 2 ** (steps - 1 - i), 8) for i in range(steps)]  # e.g. 96: 12, 24, 48, 96
    layers, channels = [], 3
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers, nn.Conv2d(channels, dim, 1))


PRESETS = {
    "tiny": {"dim": 96, "depth": 4, "num_heads": 3, "mlp_ratio": 4.0},  # CPU demo
    "small": {"dim": 384, "depth": 12, "num_heads": 6, "mlp_ratio": 4.0},  # ViT-S/16, for a GPU
}


def vit(preset: str = "tiny", **overrides) -> VisionTransformer:
    return VisionTransformer(ViTConfig(**{**PRESETS[preset], **overrides}))

"""Multimodal model of the paper (section 2.4, Fig. 3), after ALBEF.

The pretrained RNA encoder (:mod:`gb_kedro.models.rna_mae`) and WSI encoder (:mod:`gb_kedro.models.vit`)
each give a CLS embedding; linear projections map both to a common width where a contrastive loss aligns
them (eq. 7-8). A fusion encoder then lets the RNA tokens (CLS + gene-group tokens, as queries) attend to
the image tokens (cross-attention): its output is the joint representation, read by a matching head (same
lineage or not, trained with hard negatives) and an RNA decoder head (reconstruction of the RNA vector).

Cross-attention has two paths with the same output: ``F.scaled_dot_product_attention`` (fast, default) and
an explicit softmax that keeps the attention map ``[N, H, Lq, Lk]`` and its gradient, which attention x
gradient Grad-CAM needs (``save_attention = True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from gb_kedro.models.adapter import FeatureAdapter
from gb_kedro.models.layers import Attention, ConfigurableModel, Mlp, init_weights
from gb_kedro.models.rna_mae import RNAMaskedAutoencoder
from gb_kedro.models.vit import VisionTransformer


class CrossAttention(nn.Module):
    """Multi-head attention of queries x [N, Lq, D] over a context [N, Lk, D] -> [N, Lq, D].

    With ``save_attention`` the softmax is computed explicitly and kept in ``attention_map``
    ``[N, H, Lq, Lk]`` (its ``.grad`` is filled by a backward pass); otherwise
    ``F.scaled_dot_product_attention`` computes the same output without materialising the map.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.save_attention = False
        self.attention_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, lq, d = x.shape
        lk = context.shape[1]
        q = self.q(x).reshape(n, lq, self.num_heads, self.head_dim).transpose(1, 2)  # [N, H, Lq, Dh]
        k, v = (
            self.kv(context).reshape(n, lk, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        )  # [N, H, Lk, Dh]
        if self.save_attention:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # [N, H, Lq, Lk]
            if attn.requires_grad:
                attn.retain_grad()
            self.attention_map = attn
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, lq, d))


class FusionBlock(nn.Module):
    """ALBEF-style fusion layer (pre-norm): self-attention over the RNA tokens, cross-attention of the
    RNA tokens to the image tokens, MLP. x: [N, Lq, D], image: [N, Lk, D] -> [N, Lq, D]."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), self.norm_context(image))
        return x + self.mlp(self.norm3(x))


@dataclass
class MultimodalModelConfig:
    """``rna`` / ``wsi``: the encoders' own configs (``config_dict()`` of each); sizes of the new parts.
    ``image``: ``vit`` (the paper's WSI encoder on pixels) or ``features`` (``wsi`` is a
    :class:`~gb_kedro.models.adapter.FeatureAdapter`'s config: precomputed features of another patch encoder)."""

    rna: dict = field(default_factory=dict)
    wsi: dict = field(default_factory=dict)
    image: str = "vit"
    embed_dim: int = 64  # common width of the aligned (projected) CLS embeddings
    fusion_depth: int = 2
    fusion_heads: int = 4
    mlp_ratio: float = 2.0


class MultimodalModel(ConfigurableModel):
    config_class = MultimodalModelConfig

    def __init__(self, config: MultimodalModelConfig):
        super().__init__()
        self.config = config
        self.rna_encoder = RNAMaskedAutoencoder.from_config(config.rna)
        self.wsi_encoder = (
            FeatureAdapter.from_config(config.wsi)
            if config.image == "features"
            else VisionTransformer.from_config({**config.wsi, "num_classes": 0})
        )
        d_rna, d_img = self.rna_encoder.config.dim, self.wsi_encoder.config.dim
        self.rna_proj = nn.Linear(d_rna, config.embed_dim)
        self.img_proj = nn.Linear(d_img, config.embed_dim)
        self.img_to_fusion = nn.Linear(d_img, d_rna)  # image tokens to the fusion width (the RNA width)
        self.fusion = nn.ModuleList(
            [FusionBlock(d_rna, config.fusion_heads, config.mlp_ratio) for _ in range(config.fusion_depth)]
        )
        self.fusion_norm = nn.LayerNorm(d_rna)
        self.itm_head = nn.Linear(d_rna, 2)
        self.rna_decoder = nn.Sequential(
            nn.Linear(d_rna, d_rna), nn.GELU(), nn.Linear(d_rna, self.rna_encoder.config.n_genes)
        )
        for part in (
            self.rna_proj,
            self.img_proj,
            self.img_to_fusion,
            self.fusion,
            self.fusion_norm,
            self.itm_head,
            self.rna_decoder,
        ):
            part.apply(init_weights)

    @classmethod
    def from_encoders(
        cls, rna_encoder: RNAMaskedAutoencoder, wsi_encoder: VisionTransformer, **sizes
    ) -> MultimodalModel:
        """A model whose encoders start from the given (pretrained) ones; the WSI classification head is dropped."""
        model = cls(
            MultimodalModelConfig(
                rna=rna_encoder.config_dict(), wsi={**wsi_encoder.config_dict(), "num_classes": 0}, **sizes
            )
        )
        model.rna_encoder.load_state_dict(rna_encoder.state_dict())
        model.wsi_encoder.load_state_dict(
            {k: v for k, v in wsi_encoder.state_dict().items() if not k.startswith("head.")}
        )
        return model

    @property
    def fusion_attention(self) -> list[CrossAttention]:
        return [block.cross_attn for block in self.fusion]

    def set_save_attention(self, flag: bool) -> None:
        """Explicit-softmax cross-attention that keeps its maps (Grad-CAM) or the SDPA path (default)."""
        for attn in self.fusion_attention:
            attn.save_attention = flag
            attn.attention_map = None

    # --- unimodal encoders ------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images: [N, 3, S, S] in [0, 1] (or features [N, in_dim] with ``image: features``) -> (projected CLS,
        L2-normalised [N, E]; tokens [N, 1 + L, Dw], one token for features)."""
        tokens = self.wsi_encoder.forward_features(images)
        return F.normalize(self.img_proj(tokens[:, 0]), dim=-1), tokens

    def encode_rna(self, rna: torch.Tensor, mask_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """rna: [N, n_genes] (z-scored, model gene order); mask_idx: [N] group masked per sample or None.

        Returns (projected CLS, L2-normalised [N, E]; RNA tokens [N, 1 + G', D], CLS first)."""
        latent, _ = self.rna_encoder.forward_encoder(rna, mask_idx)
        return F.normalize(self.rna_proj(latent[:, 0]), dim=-1), latent

    # --- fusion and heads -------------------------------------------------------------------------
    def forward_fusion(self, rna_tokens: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """rna_tokens [N, Lq, D] attend to image_tokens [N, Lk, Dw] -> joint representation [N, Lq, D]."""
        image = self.img_to_fusion(image_tokens)
        x = rna_tokens
        for block in self.fusion:
            x = block(x, image)
        return self.fusion_norm(x)

    def forward_head(self, fused: torch.Tensor) -> torch.Tensor:
        """fused [N, Lq, D] -> matching logits [N, 2] (index 1 = same lineage), from the fused CLS."""
        return self.itm_head(fused[:, 0])

    def forward_decoder(self, fused: torch.Tensor) -> torch.Tensor:
        """fused [N, Lq, D] -> reconstructed RNA vector [N, n_genes] (model gene order), from the fused CLS."""
        return self.rna_decoder(fused[:, 0])

    def match_score(self, images: torch.Tensor, rna: torch.Tensor) -> torch.Tensor:
        """Matching logit margin (same - different) of each (image, RNA) pair: [N]."""
        _, image_tokens = self.encode_image(images)
        _, rna_tokens = self.encode_rna(rna)
        logits = self.forward_head(self.forward_fusion(rna_tokens, image_tokens))
        return logits[:, 1] - logits[:, 0]

    def forward(
        self, images: torch.Tensor, rna: torch.Tensor, mask_idx: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Paired inputs images [N, 3, S, S] and rna [N, n_genes].

        Returns ``z_img`` / ``z_rna`` [N, E] (aligned embeddings), ``image_tokens`` [N, 1 + L, Dw],
        ``rna_tokens`` [N, 1 + G', D], ``fused`` [N, 1 + G', D], ``itm_logits`` [N, 2] and ``recon`` [N, n_genes]
        for the given pairs (negative pairs are formed by the training step from these tokens).
        """
        z_img, image_tokens = self.encode_image(images)
        z_rna, rna_tokens = self.encode_rna(rna, mask_idx)
        fused = self.forward_fusion(rna_tokens, image_tokens)
        return {
            "z_img": z_img,
            "z_rna": z_rna,
            "image_tokens": image_tokens,
            "rna_tokens": rna_tokens,
            "fused": fused,
            "itm_logits": self.forward_head(fused),
            "recon": self.forward_decoder(fused),
        }

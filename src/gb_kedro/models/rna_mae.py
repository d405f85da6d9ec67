"""RNA encoder of the paper (section 2.2, Fig. 1): gene-group tokens, one token masked, MAE decoder.

The RNA vector (z-scored genes, model gene order) is split into G gene groups (PPI communities or
chromosomes). Each group's sub-vector is projected to a common width (``Linear`` + ``LayerNorm``): G tokens.
A CLS token is prepended, a learned group embedding added, and a pre-norm transformer encodes them.
During training exactly one group token per sample is masked (removed from the encoder's input, as MAE
removes masked patches); the decoder gets the encoded CLS and visible tokens, a learned mask token at the
masked position, and reconstructs every group's genes from its token (eq. 2 is the MSE over the whole
vector; the MSE on the masked group alone is the honest measure). The CLS output is the RNA embedding;
a linear projection of it feeds the contrastive loss (eq. 3-4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from gb_kedro.models.layers import Block, ConfigurableModel, init_weights


@dataclass
class RNAMAEConfig:
    """Sizes of :class:`RNAMaskedAutoencoder`; ``group_of_gene[i]`` is the group of gene i (model order)."""

    group_of_gene: list[int] = field(default_factory=list)
    dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0
    decoder_depth: int = 1
    proj_dim: int = 32
    dropout: float = 0.0

    @property
    def n_genes(self) -> int:
        return len(self.group_of_gene)

    @property
    def n_groups(self) -> int:
        return max(self.group_of_gene) + 1


class RNAMaskedAutoencoder(ConfigurableModel):
    config_class = RNAMAEConfig

    def __init__(self, config: RNAMAEConfig):
        super().__init__()
        self.config = config
        groups = torch.as_tensor(config.group_of_gene, dtype=torch.long)
        if groups.numel() == 0 or groups.min() < 0:
            raise ValueError("group_of_gene must give every gene a group index >= 0")
        sizes = torch.bincount(groups, minlength=config.n_groups)
        if (sizes == 0).any():
            raise ValueError(f"empty gene group(s): {torch.nonzero(sizes == 0).flatten().tolist()}")
        order = torch.argsort(groups, stable=True)  # genes sorted by group
        self.register_buffer("gene_order", order, persistent=False)
        self.register_buffer("inverse_order", torch.argsort(order), persistent=False)
        self.group_sizes = sizes.tolist()
        d, g = config.dim, config.n_groups

        # --- encoder -------------------------------------------------------------------------------
        self.group_embed = nn.ModuleList([nn.Sequential(nn.Linear(n, d), nn.LayerNorm(d)) for n in self.group_sizes])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, g + 1, d))  # CLS + one learned embedding per group
        self.blocks = nn.ModuleList(
            [Block(d, config.num_heads, config.mlp_ratio, config.dropout) for _ in range(config.depth)]
        )
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, config.proj_dim)  # contrastive projection of the CLS

        # --- decoder -------------------------------------------------------------------------------
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, g + 1, d))
        self.decoder_blocks = nn.ModuleList(
            [Block(d, config.num_heads, config.mlp_ratio, config.dropout) for _ in range(config.decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(d)
        self.decoder_heads = nn.ModuleList([nn.Linear(d, n) for n in self.group_sizes])
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for p in (self.cls_token, self.mask_token, self.pos_embed, self.decoder_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(init_weights)

    # -----------------------------------------------------------------------------------------------
    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, n_genes] -> group tokens [N, G, D]."""
        parts = torch.split(x[:, self.gene_order], self.group_sizes, dim=1)
        return torch.stack([embed(part) for embed, part in zip(self.group_embed, parts, strict=True)], dim=1)

    @staticmethod
    def random_masking(n: int, n_groups: int, device=None) -> torch.Tensor:
        """One masked group per sample, uniformly at random: [N] group indices (global torch RNG)."""
        return torch.randint(n_groups, (n,), device=device)

    def forward_encoder(
        self, x: torch.Tensor, mask_idx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: [N, n_genes]; mask_idx: [N] or None (no masking).

        Returns ``(latent, ids_keep)``: latent [N, 1 + G', D] (CLS first; G' = G - 1 when masking) and the
        kept group indices [N, G'] (None without masking).
        """
        tokens = self.tokenize(x) + self.pos_embed[:, 1:]
        ids_keep = None
        if mask_idx is not None:
            n, g, d = tokens.shape
            all_ids = torch.arange(g, device=x.device).expand(n, g)
            ids_keep = all_ids[all_ids != mask_idx[:, None]].reshape(n, g - 1)
            tokens = torch.gather(tokens, 1, ids_keep[..., None].expand(-1, -1, d))
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        h = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            h = block(h)
        return self.norm(h), ids_keep

    def forward_decoder(self, latent: torch.Tensor, ids_keep: torch.Tensor | None) -> torch.Tensor:
        """latent: [N, 1 + G', D] -> reconstruction [N, n_genes] (model gene order)."""
        n, _, d = latent.shape
        g = len(self.group_sizes)
        tokens = latent[:, 1:]
        if ids_keep is not None:
            full = self.mask_token.expand(n, g, d).clone()
            full.scatter_(1, ids_keep[..., None].expand(-1, -1, d), tokens)
            tokens = full
        h = torch.cat([latent[:, :1], tokens], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            h = block(h)
        h = self.decoder_norm(h)
        parts = [head(h[:, 1 + k]) for k, head in enumerate(self.decoder_heads)]
        return torch.cat(parts, dim=1)[:, self.inverse_order]

    def group_mask(self, mask_idx: torch.Tensor) -> torch.Tensor:
        """Boolean [N, n_genes]: the genes of each sample's masked group."""
        groups = torch.as_tensor(self.config.group_of_gene, device=mask_idx.device)
        return groups[None, :] == mask_idx[:, None]

    def forward_loss(
        self, x: torch.Tensor, recon: torch.Tensor, mask_idx: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """``recon_full``: MSE over the whole vector (eq. 2); ``recon_masked``: MSE over the masked group's genes."""
        err = (recon.float() - x.float()) ** 2
        losses = {"recon_full": err.mean()}
        if mask_idx is not None:
            m = self.group_mask(mask_idx).float()
            losses["recon_masked"] = (err * m).sum() / m.sum().clamp(min=1.0)
        return losses

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unmasked encoding. x: [N, n_genes] -> (CLS [N, D], group tokens [N, G, D])."""
        latent, _ = self.forward_encoder(x, None)
        return latent[:, 0], latent[:, 1:]

    def forward(
        self, x: torch.Tensor, mask_idx: torch.Tensor | None = None, mask: bool = True
    ) -> dict[str, torch.Tensor]:
        """x: [N, n_genes]. With ``mask`` (and no ``mask_idx``) one random group per sample is masked.

        Returns ``cls`` [N, D], ``tokens`` [N, G', D], ``z`` [N, proj_dim] (L2-normalised projection),
        ``recon`` [N, n_genes], ``mask_idx`` [N] (or None) and the losses of :meth:`forward_loss`.
        """
        if mask and mask_idx is None:
            mask_idx = self.random_masking(x.shape[0], len(self.group_sizes), x.device)
        latent, ids_keep = self.forward_encoder(x, mask_idx if mask else None)
        recon = self.forward_decoder(latent, ids_keep)
        cls = latent[:, 0]
        out = {
            "cls": cls,
            "tokens": latent[:, 1:],
            "z": F.normalize(self.proj(cls), dim=-1),
            "recon": recon,
            "mask_idx": mask_idx if mask else None,
        }
        out.update(self.forward_loss(x, recon, out["mask_idx"]))
        return out


PRESETS = {
    "tiny": {"dim": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 2.0, "decoder_depth": 1, "proj_dim": 32},
    "base": {"dim": 256, "depth": 4, "num_heads": 8, "mlp_ratio": 4.0, "decoder_depth": 2, "proj_dim": 128},
}


def rna_mae(group_of_gene: list[int], preset: str = "tiny", **overrides) -> RNAMaskedAutoencoder:
    """Factory: ``tiny`` (CPU demo) or ``base`` (GPU) sizes, with overrides."""
    return RNAMaskedAutoencoder(
        RNAMAEConfig(group_of_gene=list(map(int, group_of_gene)), **{**PRESETS[preset], **overrides})
    )

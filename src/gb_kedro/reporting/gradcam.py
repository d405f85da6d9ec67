"""Grad-CAM (ALBEF's pattern) of the matching score, and Table 2.

For a (patch, RNA sample) pair, the matching score s (logit margin of the matching head) is back-propagated
to a fusion layer's cross-attention map A [N, H, Lq, Lk] (RNA tokens as queries, image tokens as keys):
cam = mean_heads(A * clamp(dS/dA, 0)); summing a query's row over the image keys ranks the gene GROUPS.
Down to the inputs, gradient x (input - baseline) per gene (positive part) ranks the GENES. Table 2 counts,
over all held-out patches, how often a gene is in a patch's top k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from gb_kedro.config import PatchesConfig, ReportingConfig
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.errors import InputDataError
from gb_kedro.genes import strip_version
from gb_kedro.models.multimodal import MultimodalModel
from gb_kedro.multimodal import image_window_tokens


def attention_gradcam(attention: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """ALBEF Grad-CAM: attention [N, H, Lq, Lk] x clamp(gradient, 0), averaged over heads -> [N, Lq, Lk]."""
    return (attention * grad.clamp(min=0)).mean(dim=1)


def gradcam(
    model: MultimodalModel,
    image_tokens: list[torch.Tensor],
    rna: torch.Tensor,
    layer: int,
    baseline: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Group- and gene-level attributions of the matching score of each (patch, RNA) pair.

    Args:
        image_tokens: per window of the patches, WSI encoder tokens [N, 1 + L, Dw] (computed without
            gradient: only the RNA side and the fusion are differentiated); scores are averaged over windows.
        rna: [N, n_genes] the paired RNA vectors (model gene order).
        layer: the fusion layer whose cross-attention is read. Not the last: there only the CLS query
            reaches the matching head, so the group queries' gradients are 0 (ALBEF reads an inner layer too).
        baseline: [n_genes] reference RNA vector; the gene attribution is gradient x (input - baseline)
            (the cohort mean: what makes this sample differ from an average one; None = 0, plain gradient x input).

    Returns:
        ``groups`` [N, G]: per RNA group token, the Grad-CAM mass over the image keys; ``genes``
        [N, n_genes]: gradient x (input - baseline), positive part.
    """
    model.eval()
    model.set_save_attention(True)
    try:
        groups, genes = 0.0, 0.0
        for tokens in image_tokens:
            x = rna.detach().clone().requires_grad_(True)
            _, rna_tokens = model.encode_rna(x)
            logits = model.forward_head(model.forward_fusion(rna_tokens, tokens))
            attention = model.fusion_attention[layer].attention_map
            grad_attention, grad_x = torch.autograd.grad((logits[:, 1] - logits[:, 0]).sum(), [attention, x])
            groups = groups + attention_gradcam(attention.detach(), grad_attention)[:, 1:, :].sum(
                -1
            )  # drop the CLS query
            genes = genes + (grad_x * (x - baseline if baseline is not None else x)).detach()
    finally:
        model.set_save_attention(False)
    n = len(image_tokens)
    return (groups / n).numpy(), (genes / n).clamp(min=0).numpy()


def gradcam_batched(
    model: MultimodalModel,
    tokens: list[torch.Tensor],
    rna: np.ndarray,
    batch_size: int,
    layer: int,
    baseline: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gradcam` over the patches in batches (pairs are independent in eval mode)."""
    groups, genes = [], []
    base = torch.as_tensor(baseline, dtype=torch.float32) if baseline is not None else None
    for i in range(0, len(rna), batch_size):
        g, x = gradcam(
            model,
            [t[i : i + batch_size] for t in tokens],
            torch.as_tensor(rna[i : i + batch_size], dtype=torch.float32),
            layer,
            base,
        )
        groups.append(g)
        genes.append(x)
    return np.concatenate(groups), np.concatenate(genes)


def top_k_genes(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the k highest scores [N, k] (best first; ties by index)."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def occurrence_table(top: np.ndarray, genes: pd.DataFrame, n: int) -> pd.DataFrame:
    """Table 2: genes by the number of patches whose top-k holds them. ``genes`` rows are the model genes
    (``gene_id``, ``gene_id_versioned``, ``symbol``). Columns: rank, gene_id (versioned), occurrence, symbol."""
    counts = np.bincount(top.ravel(), minlength=len(genes))
    order = np.lexsort((np.arange(len(counts)), -counts))  # by count, then model order
    order = [i for i in order if counts[i] > 0][:n]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "gene_id": genes["gene_id_versioned"].to_numpy()[order],
            "occurrence": counts[order],
            "symbol": genes["symbol"].to_numpy()[order],
            "gene_id_unversioned": genes["gene_id"].to_numpy()[order],
        }
    )


def gene_baseline(cohort_features: pd.DataFrame, genes: list[str], cfg: ReportingConfig) -> np.ndarray | None:
    """The reference RNA vector of gradient x (input - reference): ``cohort_mean`` or ``zero`` (None)."""
    return cohort_features[genes].to_numpy(np.float32).mean(0) if cfg.gene_baseline == "cohort_mean" else None


def patch_rows(patch_index: pd.DataFrame, patches: pd.DataFrame) -> np.ndarray:
    """Positions in the (reset) patch index of the ``patches`` rows (slide_id, x, y)."""
    index = patch_index.reset_index(drop=True)
    position = pd.Series(
        np.arange(len(index)), index=index[["slide_id", "x", "y"]].astype(str).agg("/".join, axis=1).to_numpy()
    )
    wanted = patches[["slide_id", "x", "y"]].astype(str).agg("/".join, axis=1)
    if not wanted.isin(position.index).all():
        raise InputDataError(
            "retrieval_predictions", "predicted patches are not in the patch index: rerun the multimodal pipeline"
        )
    return position.loc[wanted.to_numpy()].to_numpy()


def attribute(
    model: MultimodalModel,
    images: np.ndarray,
    rna: np.ndarray,
    baseline: np.ndarray | None,
    cfg: ReportingConfig,
    patches: PatchesConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of uint8 patches [N, 3, S, S] paired with RNA vectors [N, G]: (groups [N, n_groups], genes [N, n_genes])."""
    tokens = image_window_tokens(model, images, patches.geometry[1], patches.inference_batch_size)
    return gradcam_batched(model, tokens, rna, cfg.gradcam_batch_size, cfg.gradcam_layer, baseline)


def held_out_attributions(
    model: MultimodalModel,
    predictions: pd.DataFrame,
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    cohort_features: pd.DataFrame,
    cfg: ReportingConfig,
    patches: PatchesConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of every held-out patch of ``predictions`` paired with the RNA sample it retrieved (``sample_1``):
    (groups [N, n_groups], genes [N, n_genes]; -inf for the genes constant across the cohort's samples)."""
    genes = model.meta["genes"]
    rna = cohort_features.loc[predictions["sample_1"], genes].to_numpy(np.float32)
    images = pixels.rows(patch_rows(patch_index, predictions))
    groups, scores = attribute(model, images, rna, gene_baseline(cohort_features, genes, cfg), cfg, patches)
    # a gene constant across the cohort's samples tells no sample from another: never in a patch's top k
    constant = np.ptp(cohort_features[genes].to_numpy(float), axis=0) == 0
    return groups, np.where(constant[None, :], -np.inf, scores)


def gene_counts(
    model: MultimodalModel,
    predictions: pd.DataFrame,
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    cohort_features: pd.DataFrame,
    cfg: ReportingConfig,
    patches: PatchesConfig,
) -> np.ndarray:
    """Per model gene, in how many held-out patches' Grad-CAM top-k it is (what Table 2 counts); empty for a
    model that was not trained (a retraining slot left out: no predictions)."""
    if not model.meta.get("trained", True) or predictions.empty:
        return np.zeros(0, dtype=int)
    _, scores = held_out_attributions(model, predictions, patch_index, pixels, cohort_features, cfg, patches)
    return np.bincount(top_k_genes(scores, cfg.top_k_per_patch).ravel(), minlength=len(model.meta["genes"]))


def _table2_figure(group_table: pd.DataFrame, table2: pd.DataFrame, k: int, n_patches: int) -> Figure:
    fig = Figure(figsize=(7, 3.6), dpi=110)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ax1.bar(group_table["group"].astype(str), group_table["mean_gradcam"])
    ax1.set_xlabel("gene group (PPI)")
    ax1.set_ylabel("mean Grad-CAM (attention x gradient)")
    ax2.barh(table2["symbol"][::-1], table2["occurrence"][::-1])
    ax2.set_xlabel(f"occurrence in per-patch top-{k} (of {n_patches} patches)")
    ax2.tick_params(axis="y", labelsize=7)
    fig.suptitle("Grad-CAM: gene groups and Table 2 genes", fontsize=9)
    fig.tight_layout()
    return fig


def table2_markdown(table2: pd.DataFrame) -> str:
    return "| Rank | Gene ID | Occurrence | Symbol |\n|---|---|---|---|\n" + "".join(
        f"| {r.rank} | {r.gene_id} | {r.occurrence} | {r.symbol} |\n" for r in table2.itertuples()
    )


def rank_genes(
    model: MultimodalModel,
    predictions: pd.DataFrame,
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    cohort_features: pd.DataFrame,
    gene_groups: pd.DataFrame,
    cfg: ReportingConfig,
    patches: PatchesConfig,
):
    """Grad-CAM of each held-out patch paired with its predicted RNA sample: the occurrence of every gene
    in the per-patch top-k, Table 2 (its first ``table_size`` rows) with its markdown, the group ranking,
    the per-patch table and the figure."""
    genes_versioned = model.meta["genes"]
    groups, genes = held_out_attributions(model, predictions, patch_index, pixels, cohort_features, cfg, patches)
    genes_table = gene_groups.set_index("gene_id").loc[[strip_version(g) for g in genes_versioned]].reset_index()
    top = top_k_genes(genes, cfg.top_k_per_patch)
    occurrence = occurrence_table(top, genes_table, n=len(genes_table))
    table2 = occurrence.head(cfg.table_size)[["rank", "gene_id", "occurrence", "symbol"]]
    n_groups = groups.shape[1]
    group_table = pd.DataFrame(
        {
            "group": np.arange(n_groups),
            "n_genes": genes_table.groupby("group")
            .size()
            .reindex(np.arange(n_groups))
            .fillna(0)
            .astype(int)
            .to_numpy(),
            "mean_gradcam": groups.mean(0),
            "top_group_share": np.bincount(groups.argmax(1), minlength=n_groups) / len(groups),
        }
    )
    group_table = group_table.sort_values("mean_gradcam", ascending=False).reset_index(drop=True)
    per_patch = predictions[["slide_id", "x", "y", "lineage_id", "sample_1"]].copy()
    per_patch["top_genes"] = [",".join(genes_table["gene_id"].to_numpy()[row]) for row in top]
    per_patch["top_group"] = groups.argmax(1)
    figure = _table2_figure(group_table, table2, cfg.top_k_per_patch, len(predictions))
    return occurrence, table2, table2_markdown(table2), group_table, per_patch, figure

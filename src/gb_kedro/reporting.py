"""Genetic analysis of the multimodal model (paper section 3, Table 2) and what it is scored against.

* **Grad-CAM** (ALBEF's pattern): for a (patch, RNA sample) pair, the matching score s (logit margin of the
  matching head) is back-propagated to the last fusion layer's cross-attention map A [N, H, Lq, Lk] (RNA
  tokens as queries, image tokens as keys): cam = mean_heads(A * clamp(dS/dA, 0)); summing a query's row
  over the image keys ranks the gene GROUPS. Down to the inputs, gradient x input per gene (positive part)
  ranks the GENES.
* **Occurrence** (Table 2): each patch's top-k genes, counted over all held-out patches.
* **Validation** (embedded cohort only): precision@15 / recall of the planted drivers against a variance
  ranking, random choice and a permutation null (the same attribution with the RNA-patch pairing shuffled).
* **Enrichment**: hypergeometric test of the top genes against GMT gene sets, Benjamini-Hochberg.
* **Aggressiveness**: lineages clustered by their multimodal RNA embedding; Kaplan-Meier curves and a
  log-rank test (statsmodels) of mouse survival by cluster, and the patients' OS / PFS per cluster.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from scipy import stats

from gb_kedro.errors import InputDataError
from gb_kedro.models.multimodal import MultimodalModel

logger = logging.getLogger(__name__)


# --- Grad-CAM -------------------------------------------------------------------------------------
def attention_gradcam(attention: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """ALBEF Grad-CAM: attention [N, H, Lq, Lk] x clamp(gradient, 0), averaged over heads -> [N, Lq, Lk]."""
    return (attention * grad.clamp(min=0)).mean(dim=1)


def gradcam(model: MultimodalModel, image_tokens: list[torch.Tensor], rna: torch.Tensor, layer: int = 0, baseline: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
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
            groups = groups + attention_gradcam(attention.detach(), grad_attention)[:, 1:, :].sum(-1)  # drop the CLS query
            genes = genes + (grad_x * (x - baseline if baseline is not None else x)).detach()
    finally:
        model.set_save_attention(False)
    n = len(image_tokens)
    return (groups / n).numpy(), (genes / n).clamp(min=0).numpy()


def top_k_genes(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the k highest scores [N, k] (best first; ties by index)."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def occurrence_table(top: np.ndarray, genes: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    """Table 2: genes by the number of patches whose top-k holds them. ``genes`` rows are the model genes
    (``gene_id``, ``gene_id_versioned``, ``symbol``). Columns: rank, gene_id (versioned), occurrence, symbol."""
    counts = np.bincount(top.ravel(), minlength=len(genes))
    order = np.lexsort((np.arange(len(counts)), -counts))  # by count, then model order
    order = [i for i in order if counts[i] > 0][:n]
    return pd.DataFrame({
        "rank": np.arange(1, len(order) + 1),
        "gene_id": genes["gene_id_versioned"].to_numpy()[order],
        "occurrence": counts[order],
        "symbol": genes["symbol"].to_numpy()[order],
        "gene_id_unversioned": genes["gene_id"].to_numpy()[order],
    })


# --- validation against planted truth --------------------------------------------------------------
def precision_recall(selected: Iterable[str], truth: set[str]) -> tuple[float, float]:
    selected = list(selected)
    hits = len(set(selected) & truth)
    return hits / max(len(selected), 1), hits / max(len(truth), 1)


def strip_version(ids) -> list[str]:
    return [str(g).split(".")[0] for g in ids]


# --- enrichment ------------------------------------------------------------------------------------
def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """A GMT file: one gene set per line, ``name<TAB>description<TAB>gene<TAB>gene...``."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(str(path), "gene-set file not found (reporting.enrichment.gmt_paths)")
    sets: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3:
            raise InputDataError(str(path), f"line {number} is not GMT (name, description, genes separated by tabs)")
        sets[parts[0]] = [g for g in parts[2:] if g]
    if not sets:
        raise InputDataError(str(path), "no gene set in the file")
    return sets


def map_gene_set(members: list[str], symbol_to_id: dict[str, str]) -> set[str]:
    """Gene-set members (Ensembl IDs, versioned or not, or symbols) -> unversioned Ensembl IDs."""
    out = set()
    for g in members:
        if g.upper().startswith("ENSG"):
            out.add(g.split(".")[0])
        elif g in symbol_to_id:
            out.add(symbol_to_id[g])
        elif g.upper() in symbol_to_id:
            out.add(symbol_to_id[g.upper()])
    return out


def hypergeometric_enrichment(selected: set[str], universe: set[str], gene_sets: dict[str, set[str]], min_size: int = 5) -> pd.DataFrame:
    """One-sided hypergeometric test of the overlap of ``selected`` with each gene set, all restricted to
    ``universe``; Benjamini-Hochberg q-values over the sets tested (those with >= ``min_size`` genes in the
    universe). p = P(X >= k), X ~ Hypergeom(N = |universe|, K = |set|, n = |selected|)."""
    selected = selected & universe
    rows = []
    for name, members in gene_sets.items():
        members = members & universe
        if len(members) < min_size:
            continue
        k = len(selected & members)
        rows.append({"gene_set": name, "set_size": len(members), "overlap": k, "selected": len(selected), "universe": len(universe),
                     "expected": len(selected) * len(members) / len(universe), "p_value": float(stats.hypergeom.sf(k - 1, len(universe), len(members), len(selected))),
                     "genes": ",".join(sorted(selected & members))})
    table = pd.DataFrame(rows, columns=["gene_set", "set_size", "overlap", "selected", "universe", "expected", "p_value", "genes"])
    table["q_value"] = stats.false_discovery_control(table["p_value"].to_numpy(), method="bh") if len(table) else []
    return table.sort_values(["p_value", "gene_set"]).reset_index(drop=True)


# --- survival --------------------------------------------------------------------------------------
def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate (statsmodels' SurvfuncRight): (times, survival probabilities), starting at (0, 1)."""
    from statsmodels.duration.survfunc import SurvfuncRight

    fit = SurvfuncRight(np.asarray(time, float), np.asarray(event, int))
    return np.concatenate([[0.0], fit.surv_times]), np.concatenate([[1.0], fit.surv_prob])


def log_rank(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """Log-rank test (statsmodels' survdiff) of survival across groups: (chi-square, p-value)."""
    from statsmodels.duration.survfunc import survdiff

    if len(set(group)) < 2:
        return float("nan"), float("nan")
    chisq, p = survdiff(np.asarray(time, float), np.asarray(event, int), np.asarray(group))
    return float(chisq), float(p)


def km_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, xlabel: str) -> Figure:
    fig = Figure(figsize=(6, 4.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for name, (t, s) in curves.items():
        ax.step(t, s, where="post", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- HTML report -----------------------------------------------------------------------------------
def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}", border=0, classes="table", na_rep="")


def render_report(sections: list[tuple[str, str]], title: str) -> str:
    """A self-contained HTML page (images inlined as data URIs: readable offline). ``sections``: (heading, HTML)."""
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table.table{border-collapse:collapse;font-size:13px;margin:.5em 0}table.table td,table.table th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "table.table th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd;margin:4px}h2{border-bottom:2px solid #446;padding-bottom:3px;margin-top:1.6em}"
             ".grid img{max-width:32%}.note{color:#555;font-size:13px}")
    toc = "".join(f'<li><a href="#s{i}">{html.escape(h)}</a></li>' for i, (h, _) in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{html.escape(h)}</h2>\n{content}\n' for i, (h, content) in enumerate(sections))
    return f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title><style>{style}</style></head>\n<body><h1>{html.escape(title)}</h1><ol>{toc}</ol>\n{body}</body></html>\n"


# --- plumbing shared by the nodes ------------------------------------------------------------------
@torch.no_grad()
def image_window_tokens(model: MultimodalModel, images: np.ndarray, crop: int | None, batch_size: int = 128) -> list[torch.Tensor]:
    """WSI encoder tokens of uint8 patches [N, 3, S, S], one tensor [N, 1 + L, Dw] per ``crop`` window."""
    from gb_kedro.wsi_encoding import windows

    model.eval()
    per_window: list[list[torch.Tensor]] = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.asarray(images[i : i + batch_size])).float().div_(255.0)
        for w, part in enumerate(windows(x, crop)):
            if len(per_window) <= w:
                per_window.append([])
            per_window[w].append(model.wsi_encoder.forward_features(part))
    return [torch.cat(parts) for parts in per_window]


def gradcam_batched(model: MultimodalModel, tokens: list[torch.Tensor], rna: np.ndarray, batch_size: int = 64, layer: int = 0,
                    baseline: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gradcam` over the patches in batches (pairs are independent in eval mode)."""
    groups, genes = [], []
    base = torch.as_tensor(baseline, dtype=torch.float32) if baseline is not None else None
    for i in range(0, len(rna), batch_size):
        g, x = gradcam(model, [t[i : i + batch_size] for t in tokens], torch.as_tensor(rna[i : i + batch_size], dtype=torch.float32), layer, base)
        groups.append(g)
        genes.append(x)
    return np.concatenate(groups), np.concatenate(genes)

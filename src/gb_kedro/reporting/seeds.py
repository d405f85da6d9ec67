"""Seed stability of Grad-CAM's Table 2: the model row's retrainings with other seeds (trained by the multimodal
pipeline, ``seed_<k>``), each model's held-out patches attributed with the RNA sample they retrieved, occurrences
summed over seeds, and the overlap (Jaccard) of the per-seed top ``table_size``."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def counts_of(occurrence: pd.DataFrame, genes: pd.DataFrame) -> np.ndarray:
    """A Table 2 occurrence table back to per-gene counts in model order (genes never in a top-k: 0)."""
    counts = occurrence.set_index("gene_id_unversioned")["occurrence"]
    return counts.reindex(genes["gene_id"]).fillna(0).astype(int).to_numpy()


def top_genes(counts: np.ndarray, n: int) -> list[int]:
    """The ``n`` genes of highest count (count > 0; ties by model order)."""
    ranked = np.lexsort((np.arange(len(counts)), -np.asarray(counts)))
    return [int(i) for i in ranked if counts[i] > 0][:n]


def jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def stability(counts: list[np.ndarray], genes: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Occurrence summed over seeds (every gene: rank, gene_id, symbol, occurrence, per-seed occurrence), the
    per-seed top ``n`` side by side, and the pairwise Jaccard overlaps of those top-n sets.

    ``genes``: model genes in model order (``gene_id`` unversioned, ``gene_id_versioned``, ``symbol``)."""
    counts = [np.asarray(c) for c in counts]
    total = np.sum(counts, axis=0)
    ranked = np.lexsort((np.arange(len(total)), -total))
    summed = pd.DataFrame(
        {
            "rank": np.arange(1, len(total) + 1),
            "gene_id": genes["gene_id_versioned"].to_numpy()[ranked],
            "symbol": genes["symbol"].to_numpy()[ranked],
            "occurrence": total[ranked],
            **{f"occurrence_seed_{k}": c[ranked] for k, c in enumerate(counts)},
            "gene_id_unversioned": genes["gene_id"].to_numpy()[ranked],
        }
    )
    tops = [top_genes(c, n) for c in counts]
    per_seed = pd.DataFrame(
        {f"seed_{k}": pd.Series(genes["symbol"].to_numpy()[t]) for k, t in enumerate(tops)},
        index=pd.RangeIndex(n),
    )
    per_seed.insert(0, "rank", np.arange(1, n + 1))
    pairs = {f"{a}-{b}": jaccard(tops[a], tops[b]) for a, b in itertools.combinations(range(len(tops)), 2)}
    values = np.array(list(pairs.values()))
    metrics = {
        "n_seeds": len(counts),
        "top_n": n,
        "jaccard_pairs": pairs,
        "jaccard_mean": float(values.mean()) if len(values) else float("nan"),
        "jaccard_min": float(values.min()) if len(values) else float("nan"),
        "in_every_seed_top": int(len(set.intersection(*map(set, tops)))) if tops else 0,
    }
    return summed, per_seed, metrics


def stability_figure(summed: pd.DataFrame, metrics: dict, n: int, marks: pd.Series | None = None) -> Figure:
    """Per-seed occurrence of the summed top ``n`` genes (one column per seed) and the Jaccard matrix."""
    seeds = [c for c in summed.columns if c.startswith("occurrence_seed_")]
    top = summed.head(n)
    fig = Figure(figsize=(8, 3.8), dpi=110)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    values = top[seeds].to_numpy(float)
    ax1.imshow(values, aspect="auto", cmap="viridis")
    labels = top["symbol"].astype(str)
    if marks is not None:
        labels = labels + top["gene_id_unversioned"].map(marks).fillna("").map(lambda m: f" ({m})" if m else "")
    ax1.set_yticks(range(len(top)), labels, fontsize=6)
    ax1.set_xticks(range(len(seeds)), [s.rsplit("_", 1)[1] for s in seeds])
    ax1.set_xlabel("seed")
    ax1.set_title(f"occurrence of the summed top {n}", fontsize=8)
    k = len(seeds)
    matrix = np.eye(k)
    for pair, value in metrics["jaccard_pairs"].items():
        a, b = map(int, pair.split("-"))
        matrix[a, b] = matrix[b, a] = value
    image = ax2.imshow(matrix, vmin=0, vmax=1, cmap="magma")
    for a in range(k):
        for b in range(k):
            ax2.text(
                b,
                a,
                f"{matrix[a, b]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="w" if matrix[a, b] < 0.6 else "k",
            )
    ax2.set_xticks(range(k))
    ax2.set_yticks(range(k))
    ax2.set_title(f"Jaccard of per-seed top {n} (mean {metrics['jaccard_mean']:.2f})", fontsize=8)
    fig.colorbar(image, ax=ax2, fraction=0.046)
    fig.suptitle("Grad-CAM Table 2 across retrainings (seeds)", fontsize=9)
    fig.tight_layout()
    return fig

"""Directed graphs with planted modules and heavy-tailed degrees (the synthetic PPI and the benchmark)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def module_sizes(n_nodes: int, n_modules: int, rng: np.random.Generator, smallest_fraction: float = 0.25) -> np.ndarray:
    """Unequal module sizes summing to ``n_nodes``: geometric-like decay, the smallest module about
    ``smallest_fraction`` of the largest, so that merging small communities is exercised."""
    ratio = smallest_fraction ** (1.0 / max(n_modules - 1, 1))
    weights = ratio ** np.arange(n_modules) * rng.uniform(0.85, 1.15, n_modules)
    sizes = np.floor(weights / weights.sum() * n_nodes).astype(int)
    sizes[0] += n_nodes - sizes.sum()
    return sizes


def planted_directed_graph(
    membership: np.ndarray,
    mean_out_degree: float,
    mu: float,
    rng: np.random.Generator,
    pareto_shape: float = 2.2,
) -> pd.DataFrame:
    """Directed degree-corrected planted partition.

    Each node gets a heavy-tailed propensity w ~ Pareto(``pareto_shape``). An edge's source is drawn
    with probability proportional to w; with probability ``1 - mu`` its target is drawn from the
    source's module, else from the other modules (both proportional to w). Duplicates and self-loops
    are removed, so the realised edge count is slightly below ``len(membership) * mean_out_degree``.

    Args:
        membership: module index per node (nodes are 0..n-1); -1 = node left out of the graph.
        mean_out_degree: edges per node before de-duplication.
        mu: mixing, the fraction of edges that leave their module.

    Returns:
        edges as integer node indices: columns ``source``, ``target``.
    """
    nodes = np.where(membership >= 0)[0]
    weight = rng.pareto(pareto_shape, size=len(membership)) + 1.0
    weight[membership < 0] = 0.0
    n_edges = int(round(len(nodes) * mean_out_degree))
    src = rng.choice(len(membership), size=n_edges, p=weight / weight.sum())
    dst = np.empty(n_edges, dtype=np.int64)
    outside = rng.random(n_edges) < mu
    modules = np.unique(membership[nodes])
    for module in modules:
        in_mod = membership == module
        w_in = np.where(in_mod, weight, 0.0)
        w_out = np.where(~in_mod & (membership >= 0), weight, 0.0)
        from_here = membership[src] == module
        k_in = np.where(from_here & ~outside)[0]
        k_out = np.where(from_here & outside)[0]
        if len(k_in):
            dst[k_in] = rng.choice(len(membership), size=len(k_in), p=w_in / w_in.sum())
        if len(k_out):
            dst[k_out] = (
                rng.choice(len(membership), size=len(k_out), p=w_out / w_out.sum()) if w_out.sum() > 0 else src[k_out]
            )
    edges = pd.DataFrame({"source": src, "target": dst})
    edges = edges[edges["source"] != edges["target"]].drop_duplicates().reset_index(drop=True)
    return edges

"""Benchmark: PPI gene grouping at PPI scale.

A directed graph of 19,000 genes and >= 300,000 edges with planted modules (heavy-tailed degrees,
mixing mu) is grouped twice in the same process:

- ``gb_kedro``: :func:`gb_kedro.graph.group_genes` (directed Louvain + merge to ``n_groups``);
- ``networkx``: ``networkx.community.louvain_communities`` on the same ``DiGraph``.

Reported per method: seconds, number of communities, directed modularity Qd (paper eq. 1) and NMI to
the planted modules (raw communities; merged groups too for gb_kedro).

    python benchmarks/bench_gene_grouping.py --out benchmarks/results/bench_gene_grouping.json
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs
from gb_kedro.graph import directed_modularity, group_genes
from gb_kedro.synthetic.graphs import module_sizes, planted_directed_graph


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=19_000)
    parser.add_argument("--mean-out-degree", type=float, default=17.0)
    parser.add_argument("--modules", type=int, default=10)
    parser.add_argument("--mu", type=float, default=0.3)
    parser.add_argument("--n-groups", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_gene_grouping.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    membership = np.repeat(np.arange(args.modules), module_sizes(args.nodes, args.modules, rng))
    t0 = time.perf_counter()
    edges = planted_directed_graph(membership, args.mean_out_degree, args.mu, rng).astype(str)
    build_s = time.perf_counter() - t0
    nodes = sorted(set(edges["source"]) | set(edges["target"]), key=int)
    truth = membership[[int(n) for n in nodes]]
    table = pd.DataFrame({"gene_id": nodes})

    t0 = time.perf_counter()
    groups, sizes, metrics = group_genes(
        edges, table, n_groups=args.n_groups, resolution=1.0, seed=args.seed, unconnected="residual"
    )
    ours_s = time.perf_counter() - t0
    community = groups.set_index("gene_id").loc[nodes]

    graph = nx.DiGraph()
    graph.add_edges_from(zip(edges["source"], edges["target"], strict=True))
    t0 = time.perf_counter()
    reference = nx.community.louvain_communities(graph, seed=args.seed)
    nx_s = time.perf_counter() - t0
    ref_label = {n: k for k, members in enumerate(reference) for n in members}

    result = {
        "benchmark": "gene_grouping",
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "networkx": nx.__version__,
        },
        "graph": {
            "nodes": len(nodes),
            "edges": int(len(edges)),
            "planted_modules": args.modules,
            "mu": args.mu,
            "build_seconds": round(build_s, 3),
        },
        "gb_kedro": {
            "seconds": round(ours_s, 3),
            "communities": metrics["n_communities"],
            "qd": round(metrics["qd_raw"], 4),
            "nmi_planted": round(normalized_mutual_info_score(truth, community["community"]), 4),
            "groups": metrics["n_groups"],
            "qd_merged": round(metrics["qd_merged"], 4),
            "nmi_planted_merged": round(normalized_mutual_info_score(truth, community["group"]), 4),
        },
        "networkx_louvain_directed": {
            "seconds": round(nx_s, 3),
            "communities": len(reference),
            "qd": round(directed_modularity(edges["source"], edges["target"], ref_label), 4),
            "nmi_planted": round(normalized_mutual_info_score(truth, [ref_label[n] for n in nodes]), 4),
        },
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()

"""Protein-protein interaction graph: reading, directed modularity (paper eq. 1), gene groups.

Directed modularity (Dugué & Perez 2015; paper eq. 1), with resolution gamma::

    Qd = 1/m * sum_ij [ A_ij - gamma * d_out_i * d_in_j / m ] * delta(c_i, c_j)

where ``A_ij = 1`` for an edge i -> j and m is the number of edges. Per community c this is
``e_c / m - gamma * Dout_c * Din_c / m^2`` (e_c edges inside c, Dout_c / Din_c the summed out-/in-degrees),
which is how :func:`directed_modularity` computes it. On a symmetric graph (every edge in both
directions, as PrimeKG's ``kg.csv`` stores it) Qd equals Newman's undirected modularity.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import networkx as nx
import numpy as np
import pandas as pd

from gb_kedro.errors import InputDataError, listed, source_of
from gb_kedro.genes import CHROM_ORDER, looks_like_ensembl, strip_version, symbol_map, to_stripped_ids

logger = logging.getLogger(__name__)

PRIMEKG_COLUMNS = ["relation", "x_type", "x_name", "y_type", "y_name"]


# ---------------------------------------------------------------------------------------------------
# Reading PPI files
# ---------------------------------------------------------------------------------------------------
def parse_ppi(
    frame: pd.DataFrame,
    genes: pd.DataFrame,
    fmt: str,
    directed: bool | None,
    complexes: str,
    history: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read PPI edges from a PrimeKG ``kg.csv`` or an edge list, mapped to stripped Ensembl IDs.

    Args:
        frame: the raw table. PrimeKG layout (``relation``, ``x_type``, ``x_name``, ``y_type``,
            ``y_name``, ...): only ``relation == "protein_protein"`` rows between ``gene/protein``
            nodes are used, by symbol (``x_name`` / ``y_name``). Edge list: ``source`` / ``target``
            columns (symbols or Ensembl IDs; an optional sign column ``interaction`` / ``sign``),
            or InnateDB-like ``ensembl_gene_A`` / ``ensembl_gene_B``, or else the first two columns.
        genes: annotation from :func:`gb_kedro.genes.prepare_annotation`.
        fmt: ``auto``, ``primekg`` or ``edge_list``.
        directed: edge lists with ``source``/``target`` are directed by default, other layouts
            undirected; undirected edges are stored in both directions.
        complexes: node names such as ``EZH2_SUZ12`` or ``_APH1A_NCSTN`` (OmniPath complexes) are
            ``expand``-ed to one edge per member gene or ``drop``-ped.
        history: the symbol history (:func:`gb_kedro.genes.prepare_history`): previous and alias symbols map.

    Returns:
        ``(edges, dropped_nodes, summary)``: edges has ``source``, ``target`` (stripped IDs) and
        ``sign``; duplicates and self-loops removed. ``dropped_nodes`` lists nodes that are not genes
        of the annotation (``node``, ``reason``, ``n_edges``). ``summary`` counts what happened.
    """
    source = source_of(frame, "PPI table")
    raw, fmt, directed, other = _read_edges(frame, fmt, directed, source)
    names = pd.unique(pd.concat([raw["source"], raw["target"]], ignore_index=True))
    resolved, reasons, n_complex = _resolve_nodes(names, genes, complexes, history)
    dropped, keep, edges, n_self = _map_edges(raw, resolved, reasons, directed)
    summary = {
        "format": fmt,
        "directed": bool(directed),
        "rows_in_file": int(len(frame)),
        "rows_other_relations_ignored": other,
        "edges_read": int(len(raw)),
        "edges_dropped_unmapped_node": int((~keep).sum()),
        "self_loops_dropped": n_self,
        "complex_nodes": n_complex,
        "complex_handling": complexes,
        "nodes_read": int(len(names)),
        "nodes_dropped": int(len(dropped)),
        "nodes_dropped_by_reason": {
            k: int(v)
            for k, v in dropped["reason"].astype(str).str.split(" (", regex=False).str[0].value_counts().items()
        },
        "edges_kept": int(len(edges)),
        "genes_in_graph": int(pd.unique(edges[["source", "target"]].to_numpy().ravel()).size) if len(edges) else 0,
    }
    if edges.empty:
        raise InputDataError(
            source,
            f"no edge left after mapping nodes to annotated genes ({len(dropped)} of {len(names)} nodes unmapped)",
        )
    edges.attrs["source"] = source
    return edges, dropped.reset_index(drop=True), summary


def _read_edges(
    frame: pd.DataFrame, fmt: str, directed: bool | None, source: str
) -> tuple[pd.DataFrame, str, bool, int]:
    """Step 1: the raw edges (``source``, ``target``, ``sign`` by node name), the format, the directedness
    and the number of rows of other relations ignored."""
    if fmt == "auto":
        fmt = "primekg" if all(c in frame.columns for c in PRIMEKG_COLUMNS) else "edge_list"
    if fmt == "primekg":
        missing = [c for c in PRIMEKG_COLUMNS if c not in frame.columns]
        if missing:
            raise InputDataError(source, f"not a PrimeKG kg.csv: missing column(s) {missing}")
        rows = frame[
            (frame["relation"] == "protein_protein")
            & (frame["x_type"] == "gene/protein")
            & (frame["y_type"] == "gene/protein")
        ]
        raw = pd.DataFrame({"source": rows["x_name"].astype(str), "target": rows["y_name"].astype(str), "sign": 0})
        directed = False if directed is None else directed
        other = int(len(frame) - len(rows))
    elif fmt == "edge_list":
        columns = list(frame.columns)
        if "source" in columns and "target" in columns:
            a, b = "source", "target"
            directed = True if directed is None else directed
        elif "ensembl_gene_A" in columns and "ensembl_gene_B" in columns:
            a, b = "ensembl_gene_A", "ensembl_gene_B"
            directed = False if directed is None else directed
        elif len(columns) >= 2:
            a, b = columns[0], columns[1]
            directed = False if directed is None else directed
        else:
            raise InputDataError(source, "an edge list needs at least two columns (source, target)")
        sign_col = next((c for c in ("interaction", "sign", "consensus_direction_sign") if c in columns), None)
        raw = pd.DataFrame(
            {
                "source": frame[a].astype(str),
                "target": frame[b].astype(str),
                "sign": pd.to_numeric(frame[sign_col], errors="coerce").fillna(0).astype(int) if sign_col else 0,
            }
        )
        other = 0
    else:
        raise InputDataError(source, f"unknown PPI format {fmt!r}; use auto, primekg or edge_list")
    if raw.empty:
        raise InputDataError(source, "no protein-protein edge in the file")

    return raw, fmt, directed, other


METABOLITE = re.compile(r"^(X?Metab__|CHEBI|HMDB|PUBCHEM|CID|LMFA|KEGG_C|C\d{5}$)", re.IGNORECASE)
# COSMOS (saezlab cosmosR) meta-network enzyme nodes: Gene<reaction>__<member>_<member>... (X: the reverse reaction)
ENZYME = re.compile(r"^X?Gene\d+__(.+)$")


def _resolve_nodes(
    names, genes: pd.DataFrame, complexes: str, history: pd.DataFrame | None = None
) -> tuple[dict[str, list[str]], dict[str, str], int]:
    """Step 2: node name -> stripped Ensembl IDs (complexes expanded or dropped); why each other node is dropped:
    a metabolite (ChEBI / HMDB / PubChem ID), a protein complex with a member that is not an annotated gene,
    or an unknown symbol / ID (previous and alias symbols map through the symbol ``history`` when given)."""
    by_symbol = symbol_map(genes)
    known = set(genes["gene_id"])
    use_ensembl = looks_like_ensembl(names[:500])
    single = {}
    if history is not None and len(history):
        unknown = [n for n in names if not _resolve_node(n, use_ensembl, by_symbol, known)]
        mapped, _, _ = to_stripped_ids(unknown, genes, history)
        single = {n: g for n, g in zip(unknown, mapped, strict=True) if isinstance(g, str)}

    def one(name: str) -> list[str]:
        return _resolve_node(name, use_ensembl, by_symbol, known) or ([single[name]] if name in single else [])

    resolved: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    n_complex = 0
    for name in names:
        members = one(name)
        if members:
            resolved[name] = members
            continue
        if METABOLITE.match(name.lstrip("_")):
            reasons[name] = "metabolite (ChEBI/HMDB/PubChem ID, COSMOS Metab__), not a protein"
            continue
        enzyme = ENZYME.match(name)  # COSMOS: the genes of a reaction's enzyme (one, or a complex)
        body = enzyme.group(1) if enzyme else name
        parts = [p for p in body.split("_") if p] if "_" in body or enzyme else []  # OmniPath: A_B_C or _A_B_C
        part_ids = [one(p) for p in parts]
        if enzyme and len(parts) == 1 and part_ids[0]:  # a one-gene enzyme is that gene
            resolved[name] = part_ids[0]
            continue
        if len(parts) > 1 and all(part_ids):
            n_complex += 1
            if complexes == "expand":
                resolved[name] = [g for ids in part_ids for g in ids]
            else:
                reasons[name] = "protein complex (complexes: drop)"
            continue
        if len(parts) > 1 and any(part_ids):
            missing = [p for p, ids in zip(parts, part_ids, strict=True) if not ids]
            reasons[name] = f"protein complex with a member not in the annotation ({listed(missing, 3)})"
            continue
        reasons[name] = "unknown symbol or ID (not in the annotation" + (
            " nor the symbol history)"
            if single or history is not None and len(history)
            else "; no symbol history given)"
        )
    return resolved, reasons, n_complex


def _map_edges(raw: pd.DataFrame, resolved: dict, reasons: dict, directed: bool):
    """Step 3: edges between resolved genes (both directions when undirected; self-loops and duplicates
    removed), the dropped-node table, the mask of raw edges kept and the number of self-loops."""
    counts = pd.concat([raw["source"], raw["target"]]).value_counts()
    dropped = pd.DataFrame(
        {"node": list(reasons), "reason": list(reasons.values()), "n_edges": [int(counts.get(n, 0)) for n in reasons]}
    ).sort_values("n_edges", ascending=False, kind="stable")

    keep = raw["source"].isin(resolved.keys()) & raw["target"].isin(resolved.keys())
    kept = raw[keep]
    src = kept["source"].map(resolved)
    dst = kept["target"].map(resolved)
    pairs = [(s, t, sign) for ss, tt, sign in zip(src, dst, kept["sign"], strict=True) for s in ss for t in tt]
    edges = (
        pd.DataFrame(pairs, columns=["source", "target", "sign"])
        if pairs
        else pd.DataFrame(columns=["source", "target", "sign"])
    )
    n_self = int((edges["source"] == edges["target"]).sum())  # counted before undirected edges are mirrored
    edges = edges[edges["source"] != edges["target"]]
    if not directed and len(edges):
        edges = pd.concat([edges, edges.rename(columns={"source": "target", "target": "source"})], ignore_index=True)
    edges = edges.drop_duplicates(["source", "target"]).reset_index(drop=True)
    return dropped, keep, edges, n_self


def _resolve_node(name: str, use_ensembl: bool, by_symbol: dict, known: set) -> list[str]:
    if name.startswith("ENSG"):
        stripped = strip_version(name)
        return [stripped] if stripped in known else []
    if not use_ensembl and name in by_symbol:
        return [by_symbol[name]]
    return []


# ---------------------------------------------------------------------------------------------------
# Directed modularity and Louvain
# ---------------------------------------------------------------------------------------------------
def directed_modularity(sources: Iterable, targets: Iterable, labels: dict, resolution: float = 1.0) -> float:
    """Qd of a partition (paper eq. 1) for directed edges ``sources[k] -> targets[k]``.

    Args:
        sources: the source node of each edge.
        targets: the target node of each edge (same length as ``sources``).
        labels: node -> community label; every node of an edge must have one.
        resolution: gamma (1 = the paper's Qd).
    """
    src = pd.Series(sources).map(labels)
    dst = pd.Series(targets).map(labels)
    if src.isna().any() or dst.isna().any():
        raise ValueError("every node of an edge needs a community label")
    m = float(len(src))
    if m == 0:
        return 0.0
    inside = (src.to_numpy() == dst.to_numpy()).sum() / m
    d_out = src.value_counts()
    d_in = dst.value_counts()
    expected = (d_out * d_in.reindex(d_out.index, fill_value=0)).sum() / (m * m)
    return float(inside - resolution * expected)


def louvain_directed(edges: pd.DataFrame, resolution: float = 1.0, seed: int = 0, threshold: float = 1e-7) -> list[set]:
    """Directed Louvain (Dugué & Perez modularity) through networkx on a ``DiGraph``.

    Returns communities sorted by size (largest first, ties by smallest member) for determinism.
    """
    graph = nx.DiGraph()
    graph.add_edges_from(zip(edges["source"], edges["target"], strict=True))
    communities = nx.community.louvain_communities(graph, resolution=resolution, threshold=threshold, seed=seed)
    return sorted(communities, key=lambda c: (-len(c), min(c)))


def place_by_coexpression(
    expression: pd.DataFrame, genes: list[str], group_of: dict[str, int]
) -> dict[str, tuple[int, float]]:
    """Each of ``genes`` (no PPI edge) -> (the group whose mean profile it correlates with best, that Pearson r),
    profiles over the samples of ``expression`` (samples x genes, z-scored: the TCGA compendium); a group's mean
    profile is that of its genes with PPI edges (``group_of``)."""
    groups = sorted(set(group_of.values()))
    members = {g: [gene for gene, k in group_of.items() if k == g and gene in expression.columns] for g in groups}
    centroids = np.stack([expression[members[g]].to_numpy(float).mean(1) for g in groups], axis=1)  # [samples, G]
    profiles = expression[genes].to_numpy(float)  # [samples, genes]

    def standardise(x: np.ndarray) -> np.ndarray:
        sd = x.std(0)
        return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)

    r = standardise(profiles).T @ standardise(centroids) / len(expression)  # [genes, G]
    best = r.argmax(1)
    return {gene: (groups[b], float(r[i, b])) for i, (gene, b) in enumerate(zip(genes, best, strict=True))}


def group_genes(
    edges: pd.DataFrame,
    gene_table: pd.DataFrame,
    n_groups: int,
    resolution: float,
    seed: int,
    unconnected: str,
    expression: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """PPI gene groups: directed Louvain on the PPI restricted to the kept genes, then merging.

    Merging (the paper's "clusters with significantly less nodes were grouped together"): the
    ``n_groups - 1`` largest communities are groups 0 .. n_groups-2; every smaller community, plus
    every kept gene with no PPI edge among the kept genes, forms the residual group ``n_groups - 1``.
    If Louvain finds fewer than ``n_groups`` communities, each is a group and PPI-less genes form one
    more; the result then has fewer groups (logged).

    ``unconnected``: where the genes without a PPI edge go: ``residual`` (the paper's rule: the left-over group)
    or ``coexpression`` (the group whose mean TCGA profile they correlate with best, :func:`place_by_coexpression`;
    ``expression`` = TCGA features). On a sparse real network most genes have no edge, and the residual group
    becomes one huge token.

    Args:
        edges: ``source`` / ``target`` stripped IDs (directed).
        gene_table: the kept genes (``gene_id``, ``gene_id_versioned``, ``symbol`` ...), model order.

    Returns:
        ``(gene_groups, group_sizes, metrics)``: ``gene_groups`` = gene table + ``community`` (raw
        Louvain index, -1 if no edge) + ``group`` + ``placement`` (``ppi``, ``residual`` or ``coexpression``);
        metrics: raw and merged Qd, counts, the residual group's size and share, gamma, seed.
    """
    kept = set(gene_table["gene_id"])
    sub = edges[edges["source"].isin(kept) & edges["target"].isin(kept)]
    if sub.empty:
        raise InputDataError(
            source_of(edges, "PPI graph"),
            f"no PPI edge left between the {len(kept)} kept genes: the PPI and the expression data share no connected genes",
        )
    communities = louvain_directed(sub, resolution=resolution, seed=seed)
    community_of = {g: k for k, members in enumerate(communities) for g in members}
    qd_raw = directed_modularity(sub["source"], sub["target"], community_of, resolution=1.0)

    n_comm = len(communities)
    n_kept = min(n_comm, n_groups - 1) if n_comm >= n_groups else n_comm
    residual = n_kept
    group_of = {g: (k if k < n_kept else residual) for g, k in community_of.items()}
    qd_merged = directed_modularity(sub["source"], sub["target"], group_of, resolution=1.0)

    out = gene_table.copy()
    out["in_ppi"] = out["gene_id"].isin(community_of.keys())
    out["community"] = out["gene_id"].map(community_of).fillna(-1).astype(int)
    out["group"] = out["gene_id"].map(group_of).fillna(residual).astype(int)
    out["placement"] = np.where(out["in_ppi"], np.where(out["group"] == residual, "residual", "ppi"), "residual")
    lonely = out.loc[~out["in_ppi"], "gene_id"].tolist()
    if unconnected == "coexpression" and lonely:
        if expression is None:
            raise ValueError("unconnected: coexpression needs the TCGA expression features")
        placed = place_by_coexpression(expression, lonely, group_of)
        rows = ~out["in_ppi"]
        out.loc[rows, "group"] = out.loc[rows, "gene_id"].map(lambda g: placed[g][0]).astype(int)
        out.loc[rows, "coexpression_r"] = out.loc[rows, "gene_id"].map(lambda g: placed[g][1])
        out.loc[rows, "placement"] = "coexpression"
    # Relabel consecutively (an empty residual group leaves no gap).
    present = sorted(out["group"].unique())
    out["group"] = out["group"].map({g: i for i, g in enumerate(present)}).astype(int)
    if len(present) < n_groups:
        raise InputDataError(
            source_of(edges, "PPI graph"),
            f"directed Louvain finds {n_comm} communities among the {len(kept)} kept genes, giving {len(present)} "
            f"gene groups, fewer than the {n_groups} asked (data_engineering.gene_grouping.n_groups): the PPI covers "
            "too few of the genes; use a larger PPI, fewer groups, or a higher resolution",
        )
    sizes = group_sizes(out)
    residual_size = int((out["placement"] == "residual").sum())
    metrics = {
        "qd_raw": qd_raw,
        "qd_merged": qd_merged,
        "n_communities": n_comm,
        "n_groups": int(len(present)),
        "resolution": resolution,
        "seed": seed,
        "ppi_nodes": int(len(community_of)),
        "ppi_edges": int(len(sub)),
        "genes": int(len(out)),
        "genes_without_ppi_edge": int((~out["in_ppi"]).sum()),
        "unconnected": unconnected,
        "genes_placed_by_coexpression": int((out["placement"] == "coexpression").sum()),
        "residual_group_genes": residual_size,
        "residual_group_share": residual_size / max(len(out), 1),
        "largest_group_share": float(sizes["n_genes"].max() / max(len(out), 1)),
        "community_sizes": [len(c) for c in communities],
    }
    return out, sizes, metrics


def chromosome_groups(gene_table: pd.DataFrame, n_groups: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ablation grouping: genes in genome order (chr1..22, X, Y, M), chromosomes cut into
    ``n_groups`` contiguous blocks of about equal gene count (a chromosome is never split).
    Genes on other contigs join the last group."""
    order = {c: i for i, c in enumerate(CHROM_ORDER)}
    table = gene_table.copy()
    rank = table["chrom"].map(order).fillna(len(order)).astype(int)
    counts = rank.value_counts().sort_index()
    chroms = list(counts.index)
    if len(chroms) < n_groups:
        named = sorted(set(table["chrom"].astype(str)))
        raise InputDataError(
            source_of(gene_table, "gene annotation"),
            f"the kept genes lie on {len(chroms)} chromosome(s) ({', '.join(named[:8])}), fewer than the "
            f"{n_groups} chromosome groups asked (data_engineering.gene_grouping.n_groups); chromosomes are "
            "read as chr1..chr22, chrX, chrY, chrM (1/chr1/MT spellings are normalised)",
        )
    total = counts.sum()
    assignment: dict[int, int] = {}
    group, cumulative = 0, 0
    for i, chrom in enumerate(chroms):
        assignment[chrom] = group
        cumulative += counts[chrom]
        remaining_chroms = len(chroms) - i - 1
        remaining_groups = n_groups - group - 1
        if remaining_groups > 0 and (
            cumulative >= total * (group + 1) / n_groups or remaining_chroms <= remaining_groups
        ):
            group += 1
    table["group"] = rank.map(assignment).astype(int)
    table["community"] = -1
    table["in_ppi"] = False
    return table, group_sizes(table)


def group_sizes(gene_groups: pd.DataFrame) -> pd.DataFrame:
    """Genes per group, with the chromosomes / communities each group spans."""
    rows = []
    for group, part in gene_groups.groupby("group", sort=True):
        rows.append(
            {
                "group": int(group),
                "n_genes": int(len(part)),
                "n_communities": int(part.loc[part["community"] >= 0, "community"].nunique()),
                "n_without_ppi_edge": int((~part["in_ppi"]).sum()),
                "chromosomes": ",".join(c for c in CHROM_ORDER if c in set(part["chrom"])) if "chrom" in part else "",
            }
        )
    return pd.DataFrame(rows)

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

import networkx as nx
import pandas as pd

from gb_kedro.errors import InputDataError, source_of
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


METABOLITE = re.compile(r"^(CHEBI|HMDB|PUBCHEM|CID|LMFA|KEGG_C|C\d{5}$)", re.IGNORECASE)


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
            reasons[name] = "metabolite (ChEBI/HMDB/PubChem ID), not a protein"
            continue
        parts = [p for p in name.split("_") if p] if "_" in name else []  # OmniPath complexes: A_B_C or _A_B_C
        part_ids = [one(p) for p in parts]
        if len(parts) > 1 and all(part_ids):
            n_complex += 1
            if complexes == "expand":
                resolved[name] = [g for ids in part_ids for g in ids]
            else:
                reasons[name] = "protein complex (complexes: drop)"
            continue
        if len(parts) > 1 and any(part_ids):
            missing = [p for p, ids in zip(parts, part_ids, strict=True) if not ids]
            reasons[name] = f"protein complex with a member not in the annotation ({', '.join(missing[:3])})"
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
    if not directed and len(edges):
        edges = pd.concat([edges, edges.rename(columns={"source": "target", "target": "source"})], ignore_index=True)
    n_self = int((edges["source"] == edges["target"]).sum())
    edges = edges[edges["source"] != edges["target"]].drop_duplicates(["source", "target"]).reset_index(drop=True)
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
def directed_modularity(sources, targets, labels: dict, resolution: float = 1.0) -> float:
    """Qd of a partition (paper eq. 1) for directed edges ``sources[k] -> targets[k]``.

    Args:
        sources, targets: equal-length sequences of node IDs (one entry per edge).
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


def group_genes(
    edges: pd.DataFrame,
    gene_table: pd.DataFrame,
    n_groups: int,
    resolution: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """PPI gene groups: directed Louvain on the PPI restricted to the kept genes, then merging.

    Merging (the paper's "clusters with significantly less nodes were grouped together"): the
    ``n_groups - 1`` largest communities are groups 0 .. n_groups-2; every smaller community, plus
    every kept gene with no PPI edge among the kept genes, forms the residual group ``n_groups - 1``.
    If Louvain finds fewer than ``n_groups`` communities, each is a group and PPI-less genes form one
    more; the result then has fewer groups (logged).

    Args:
        edges: ``source`` / ``target`` stripped IDs (directed).
        gene_table: the kept genes (``gene_id``, ``gene_id_versioned``, ``symbol`` ...), model order.

    Returns:
        ``(gene_groups, group_sizes, metrics)``: ``gene_groups`` = gene table + ``community`` (raw
        Louvain index, -1 if no edge) + ``group``; metrics: raw and merged Qd, counts, gamma, seed.
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
    metrics = {
        "qd_raw": qd_raw,
        "qd_merged": qd_merged,
        "n_communities": n_comm,
        "n_groups": int(len(present)),
        "resolution": resolution,
        "seed": seed,
        "ppi_nodes": int(len(community_of)),
        "ppi_edges": int(len(sub)),
        "genes_without_ppi_edge": int((~out["in_ppi"]).sum()),
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

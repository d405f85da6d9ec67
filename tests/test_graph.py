import networkx as nx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import normalized_mutual_info_score

from gb_kedro.datasets.table import read_table
from gb_kedro.errors import InputDataError
from gb_kedro.graph import chromosome_groups, directed_modularity, group_genes, louvain_directed, parse_ppi
from gb_kedro.synthetic.graphs import module_sizes, planted_directed_graph
from tests.helpers import base_options

_ppi = base_options("data_engineering.ppi")
PPI = {"fmt": _ppi["format"], "directed": _ppi["directed"], "complexes": _ppi["complexes"]}


def test_directed_modularity_by_hand():
    # 0->1->2->0 is one community, 3<->4 the other; m = 6.
    # inside = 5/6; Dout_A * Din_A = 4 * 3, Dout_B * Din_B = 2 * 3 -> expected 18/36; Qd = 5/6 - 1/2 = 1/3.
    src, dst = [0, 1, 2, 2, 3, 4], [1, 2, 0, 3, 4, 3]
    labels = {0: "A", 1: "A", 2: "A", 3: "B", 4: "B"}
    assert directed_modularity(src, dst, labels) == pytest.approx(1 / 3)
    # Direction matters: reversing 2->3 changes the degrees but not Qd here; a one-community partition gives 0.
    assert directed_modularity(src, dst, dict.fromkeys(labels, 0)) == pytest.approx(0.0)
    graph = nx.DiGraph(list(zip(src, dst, strict=True)))
    assert directed_modularity(src, dst, labels, resolution=0.5) == pytest.approx(
        nx.community.modularity(graph, [{0, 1, 2}, {3, 4}], resolution=0.5)
    )


def test_directed_modularity_needs_every_label():
    with pytest.raises(ValueError, match="community label"):
        directed_modularity([0], [1], {0: 0})


def _planted(n=2000, k=10, mu=0.3, seed=1):
    rng = np.random.default_rng(seed)
    membership = np.repeat(np.arange(k), module_sizes(n, k, rng))
    edges = planted_directed_graph(membership, mean_out_degree=8, mu=mu, rng=rng)
    return membership, edges.astype(str)


def test_louvain_recovers_planted_modules():
    membership, edges = _planted()
    communities = louvain_directed(edges, seed=0)
    label = {int(n): c for c, members in enumerate(communities) for n in members}
    nodes = sorted(label)
    assert normalized_mutual_info_score(membership[nodes], [label[n] for n in nodes]) >= 0.8


def test_group_genes_merges_to_n_groups_and_handles_genes_without_edges():
    membership, edges = _planted(n=600, k=10)
    table = pd.DataFrame({"gene_id": [str(i) for i in range(610)]})  # 10 genes with no PPI edge
    groups, sizes, metrics = group_genes(edges, table, n_groups=7, resolution=1.0, seed=0, unconnected="residual")
    assert metrics["n_groups"] == 7 and sorted(groups["group"].unique()) == list(range(7))
    assert metrics["n_communities"] >= 7
    residual = groups[~groups["in_ppi"]]["group"].unique()
    assert residual.tolist() == [6] and metrics["genes_without_ppi_edge"] == 10
    assert sizes["n_genes"].sum() == 610
    # The 6 largest communities stay whole.
    kept = groups[groups["group"] < 6]
    assert (kept.groupby("group")["community"].nunique() == 1).all()
    assert metrics["qd_merged"] <= metrics["qd_raw"] + 1e-12


def test_empty_ppi_after_filtering():
    edges = pd.DataFrame({"source": ["a"], "target": ["b"]})
    with pytest.raises(InputDataError, match=r"PPI graph: no PPI edge left between the 2 kept genes"):
        group_genes(
            edges, pd.DataFrame({"gene_id": ["x", "y"]}), n_groups=7, resolution=1.0, seed=0, unconnected="residual"
        )


def test_edge_list_with_complexes_metabolites_and_signs(gencode):
    genes, _ = gencode
    frame = pd.DataFrame(
        {
            "source": ["EZH2_SUZ12", "CHEBI:15422", "TP53", "TP53"],
            "interaction": [1, 1, -1, 1],
            "target": ["CDKN2A", "TP53", "MDM2", "TP53"],
        }
    )
    edges, dropped, summary = parse_ppi(frame, genes, **PPI)
    assert summary["directed"] and summary["complex_nodes"] == 1 and summary["self_loops_dropped"] == 1
    symbol = genes.set_index("symbol")["gene_id"]
    pairs = set(zip(edges["source"], edges["target"], strict=True))
    assert pairs == {
        (symbol["EZH2"], symbol["CDKN2A"]),
        (symbol["SUZ12"], symbol["CDKN2A"]),
        (symbol["TP53"], symbol["MDM2"]),
    }
    assert dropped["node"].tolist() == ["CHEBI:15422"]
    dropped_complex = parse_ppi(frame, genes, **{**PPI, "complexes": "drop"})[1]
    assert "EZH2_SUZ12" in dropped_complex["node"].tolist()


def test_dropped_nodes_are_counted_under_their_reason(gencode):
    """OmniPath's leading-underscore complexes expand; metabolites, complexes with an unknown member and unknown
    symbols are each named as such; self-loops are counted apart."""
    genes, _ = gencode
    frame = pd.DataFrame(
        {
            "source": ["_APH1A_NCSTN_PSEN1", "CHEBI_16038_CHEBI_28494", "P13288_RPS27A", "B4DGD0", "EGFR"],
            "target": ["NOTCH1", "TP53", "TP53", "TP53", "EGFR"],
        }
    )
    edges, dropped, summary = parse_ppi(frame, genes, **PPI)
    assert summary["complex_nodes"] == 1 and summary["self_loops_dropped"] == 1
    assert len(edges) == 3  # APH1A, NCSTN, PSEN1 -> NOTCH1
    reasons = dict(zip(dropped["node"], dropped["reason"], strict=True))
    assert reasons["CHEBI_16038_CHEBI_28494"].startswith("metabolite")
    assert reasons["P13288_RPS27A"] == "protein complex with a member not in the annotation (P13288)"
    assert reasons["B4DGD0"].startswith("unknown symbol or ID")
    assert summary["nodes_dropped_by_reason"] == {
        "metabolite": 1,
        "protein complex with a member not in the annotation": 1,
        "unknown symbol or ID": 1,
    }


def test_no_edge_after_mapping_names_the_file(tiny_genes):
    frame = pd.DataFrame({"source": ["FOO"], "target": ["BAR"]})
    frame.attrs["source"] = "edges.tsv"
    with pytest.raises(InputDataError, match=r"edges\.tsv: no edge left after mapping nodes to annotated genes"):
        parse_ppi(frame, tiny_genes, **PPI)


def test_primekg_layout(tiny_cohort, tiny_genes):
    kg = tiny_cohort["kg"]
    edges, dropped, summary = parse_ppi(kg, tiny_genes, **PPI)
    assert summary["format"] == "primekg" and not summary["directed"]
    assert summary["rows_other_relations_ignored"] == int((kg["relation"] != "protein_protein").sum()) > 0
    pairs = set(zip(edges["source"], edges["target"], strict=True))
    assert all((b, a) in pairs for a, b in pairs)  # symmetric, as PrimeKG stores it


def test_real_omnipath_matches_networkx_and_merges_to_seven(gencode, shared):
    genes, _ = gencode
    edges, dropped, summary = parse_ppi(read_table(shared("ppi/omnipath_signed_directed.tsv")), genes, **PPI)
    assert summary["directed"] and summary["complex_nodes"] > 100
    table = genes[genes["gene_id"].isin(set(edges["source"]) | set(edges["target"]))]
    groups, sizes, metrics = group_genes(edges, table, n_groups=7, resolution=1.0, seed=0, unconnected="residual")
    graph = nx.DiGraph(list(zip(edges["source"], edges["target"], strict=True)))
    reference = nx.community.louvain_communities(graph, seed=1)
    q_nx = nx.community.modularity(graph, reference)
    assert abs(metrics["qd_raw"] - q_nx) <= 0.02
    assert 0.55 <= metrics["qd_raw"] <= 0.7
    assert metrics["n_groups"] == 7 and len(sizes) == 7


def test_real_innatedb_undirected_ensembl(gencode, shared):
    genes, _ = gencode
    edges, dropped, summary = parse_ppi(read_table(shared("ppi/innatedb_ppi.tsv")), genes, **PPI)
    assert not summary["directed"] and summary["genes_in_graph"] > 14_000
    table = genes[genes["gene_id"].isin(set(edges["source"]))]
    groups, sizes, metrics = group_genes(edges, table, n_groups=7, resolution=1.0, seed=0, unconnected="residual")
    assert metrics["n_groups"] == 7 and metrics["qd_raw"] > 0.3


def test_chromosome_groups_are_contiguous_and_balanced(gencode):
    genes, _ = gencode
    table = genes[genes["gene_type"] == "protein_coding"]
    groups, sizes = chromosome_groups(table, n_groups=7)
    assert len(sizes) == 7 and sizes["n_genes"].sum() == len(table)
    assert sizes["n_genes"].max() < 2.5 * sizes["n_genes"].min()
    order = [c for s in sizes["chromosomes"] for c in s.split(",")]
    assert len(order) == len(set(order))  # a chromosome is never split


def test_cosmos_meta_network_nodes(tmp_path):
    """cosmosR's meta-network: ``Metab__HMDB...`` nodes are metabolites (counted as such, not as unknown IDs) and
    ``Gene<n>__A_B`` enzyme nodes name their genes (expanded), ``XGene`` the reverse reactions."""
    genes = pd.DataFrame(
        {
            "gene_id": ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003", "ENSG00000000004"],
            "gene_id_versioned": ["ENSG00000000001.1", "ENSG00000000002.1", "ENSG00000000003.1", "ENSG00000000004.1"],
            "symbol": ["PIGK", "PIGU", "ALDH9A1", "PRKACA"],
            "gene_type": "protein_coding",
            "chrom": "1",
        }
    )
    frame = pd.DataFrame(
        {
            "source": ["Metab__HMDB0000122_c", "Gene1003__PIGK_PIGU", "XGene12__ALDH9A1", "PRKACA", "Gene7__PIGK_NOPE"],
            "interaction": [1, 1, -1, 1, 1],
            "target": ["Gene1003__PIGK_PIGU", "Metab__HMDB0000190_m", "PRKACA", "ALDH9A1", "PRKACA"],
        }
    )
    frame.attrs["source"] = "meta_network.tsv"
    edges, dropped, summary = parse_ppi(frame, genes, **PPI)
    reasons = summary["nodes_dropped_by_reason"]
    assert reasons["metabolite"] == 2
    assert not any(r.startswith("unknown symbol") for r in reasons)
    assert reasons["protein complex with a member not in the annotation"] == 1  # Gene7__PIGK_NOPE
    pairs = set(zip(edges["source"], edges["target"], strict=True))
    assert ("ENSG00000000003", "ENSG00000000004") in pairs  # XGene12__ALDH9A1 -> PRKACA: a one-gene enzyme
    assert summary["complex_nodes"] == 1  # Gene1003__PIGK_PIGU


def test_self_loops_are_counted_once_per_row_in_undirected_networks(gencode, shared):
    genes, _ = gencode
    table = read_table(shared("ppi/innatedb_ppi.tsv"))
    self_rows = int((table["ensembl_gene_A"] == table["ensembl_gene_B"]).sum())
    _, _, summary = parse_ppi(table, genes, **PPI)
    assert 0 < summary["self_loops_dropped"] <= self_rows  # not doubled by the undirected mirror (was 2x)


def test_sparse_real_network_reports_and_places_unconnected_genes_by_coexpression(gencode, shared):
    """On OmniPath most expressed genes have no edge: the left-over group is reported, and ``coexpression`` places
    each unconnected gene in the group whose mean TCGA profile it follows best."""
    genes, _ = gencode
    edges, _, _ = parse_ppi(read_table(shared("ppi/omnipath_signed_directed.tsv")), genes, **PPI)
    lgg = pd.read_csv(shared("rnaseq/tcga_lgg_log2_rsem_symbols.tsv"), sep="\t").set_index("gene_name")
    by_symbol = genes.drop_duplicates("symbol").set_index("symbol")["gene_id"]
    lgg = lgg[lgg.index.isin(by_symbol.index)]
    lgg.index = by_symbol.loc[lgg.index].to_numpy()
    lgg = lgg[~lgg.index.duplicated()]
    lgg = lgg[lgg.var(axis=1) > 0]
    expression = ((lgg.T - lgg.T.mean()) / lgg.T.std()).astype("float32")  # samples x genes, z-scored
    table = genes[genes["gene_id"].isin(expression.columns)]
    _, residual_sizes, residual = group_genes(edges, table, 7, 1.0, 0, unconnected="residual")
    assert residual["genes_without_ppi_edge"] > 5_000 and residual["residual_group_share"] > 0.5
    groups, sizes, placed = group_genes(edges, table, 7, 1.0, 0, unconnected="coexpression", expression=expression)
    assert placed["genes_placed_by_coexpression"] == residual["genes_without_ppi_edge"]
    assert placed["residual_group_share"] < 0.2 and len(sizes) == 7
    moved = groups[groups["placement"] == "coexpression"]
    assert moved["coexpression_r"].median() > 0.3  # they follow their group's mean profile

"""Gene-set enrichment of the top genes of a ranking: one-sided hypergeometric test, Benjamini-Hochberg."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from scipy import stats

from gb_kedro.config import EnrichmentConfig
from gb_kedro.errors import InputDataError

logger = logging.getLogger(__name__)


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


def hypergeometric_enrichment(
    selected: set[str], universe: set[str], gene_sets: dict[str, set[str]], min_size: int
) -> pd.DataFrame:
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
        rows.append(
            {
                "gene_set": name,
                "set_size": len(members),
                "overlap": k,
                "selected": len(selected),
                "universe": len(universe),
                "expected": len(selected) * len(members) / len(universe),
                "p_value": float(stats.hypergeom.sf(k - 1, len(universe), len(members), len(selected))),
                "genes": ",".join(sorted(selected & members)),
            }
        )
    table = pd.DataFrame(
        rows, columns=["gene_set", "set_size", "overlap", "selected", "universe", "expected", "p_value", "genes"]
    )
    table["q_value"] = stats.false_discovery_control(table["p_value"].to_numpy(), method="bh") if len(table) else []
    return table.sort_values(["p_value", "gene_set"]).reset_index(drop=True)


def enrich(ranked_genes: pd.Series, gene_table: pd.DataFrame, cfg: EnrichmentConfig) -> pd.DataFrame:
    """Enrichment of the first ``top_n`` of ``ranked_genes`` (unversioned IDs) in every GMT file of
    ``gmt_paths`` (universe = the harmonised model genes)."""
    universe = set(gene_table["gene_id"])
    symbol_to_id = dict(zip(gene_table["symbol"].astype(str), gene_table["gene_id"], strict=False))
    sets = {name: map_gene_set(members, symbol_to_id) for path in cfg.paths for name, members in read_gmt(path).items()}
    table = hypergeometric_enrichment(set(ranked_genes.head(cfg.top_n)), universe, sets, cfg.min_set_size)
    table["significant"] = table["q_value"] < cfg.alpha
    logger.info(
        "enrichment: %d gene sets tested, %d significant (q < %s)",
        len(table),
        int(table["significant"].sum()),
        cfg.alpha,
    )
    return table

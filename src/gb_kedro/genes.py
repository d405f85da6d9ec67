"""Gene identifiers: GENCODE annotation, Ensembl versions, symbols.

Matching uses the Ensembl gene ID without its version (``ENSG00000198964``); reports keep the
versioned ID of the annotation (``ENSG00000198964.14``). GENCODE's pseudo-autosomal copies on chrY
(``ENSG00000182378.14_PAR_Y``) share their stripped ID with the chrX copy; they are dropped (GDC's
STAR files count PAR reads on the chrX copy, the ``_PAR_Y`` rows are all zero) and listed in the
dropped-genes table.
"""

from __future__ import annotations

import re

import pandas as pd

from gb_kedro.errors import InputDataError, source_of

ENSEMBL_GENE = re.compile(r"^ENSG\d{11}(\.\d+)?(_PAR_Y)?$")
ANNOTATION_COLUMNS = ["gene_id", "gene_name", "gene_type", "chrom", "start", "end"]

# Chromosome order used by the chromosome grouping and reports.
CHROM_ORDER = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY", "chrM"]


def strip_version(gene_id: str) -> str:
    """``ENSG00000198964.14`` -> ``ENSG00000198964``; ``..._PAR_Y`` keeps its suffix to stay distinct."""
    par = gene_id.endswith("_PAR_Y")
    core = gene_id[: -len("_PAR_Y")] if par else gene_id
    core = core.split(".", 1)[0]
    return core + ("_PAR_Y" if par else "")


def looks_like_ensembl(values, min_fraction: float = 0.5) -> bool:
    """True when at least ``min_fraction`` of ``values`` are Ensembl gene IDs."""
    values = [str(v) for v in values]
    if not values:
        return False
    hits = sum(bool(ENSEMBL_GENE.match(v)) for v in values)
    return hits / len(values) >= min_fraction


def prepare_annotation(annotation: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index a GENCODE gene table by stripped Ensembl ID.

    Args:
        annotation: GENCODE layout (``gene_id`` versioned, ``gene_name``, ``gene_type``, ``chrom``,
            ``start``, ``end``; extra columns are kept).

    Returns:
        ``(genes, dropped)``: ``genes`` has one row per stripped ID with columns ``gene_id``
        (stripped), ``gene_id_versioned``, ``symbol``, ``gene_type``, ``chrom``, ``start``, ``end``;
        ``dropped`` lists the ``_PAR_Y`` copies (``gene``, ``stage``, ``reason``).
    """
    source = source_of(annotation, "gene annotation")
    missing = [c for c in ANNOTATION_COLUMNS if c not in annotation.columns]
    if missing:
        raise InputDataError(source, f"not a GENCODE gene table: missing column(s) {missing}")
    table = annotation.copy()
    table["gene_id"] = table["gene_id"].astype(str)
    par = table["gene_id"].str.endswith("_PAR_Y")
    dropped = pd.DataFrame(
        {
            "gene": table.loc[par, "gene_id"],
            "stage": "annotation",
            "reason": "PAR_Y copy: same stripped Ensembl ID as the chrX gene",
        }
    )
    table = table.loc[~par].copy()
    table.insert(0, "gene_id_stripped", table["gene_id"].map(strip_version))
    dups = table["gene_id_stripped"].duplicated(keep="first")
    if dups.any():
        dropped = pd.concat(
            [
                dropped,
                pd.DataFrame(
                    {
                        "gene": table.loc[dups, "gene_id"],
                        "stage": "annotation",
                        "reason": "duplicate stripped Ensembl ID in the annotation (first kept)",
                    }
                ),
            ]
        )
        table = table.loc[~dups]
    genes = pd.DataFrame(
        {
            "gene_id": table["gene_id_stripped"].to_numpy(),
            "gene_id_versioned": table["gene_id"].to_numpy(),
            "symbol": table["gene_name"].astype(str).to_numpy(),
            "gene_type": table["gene_type"].astype(str).to_numpy(),
            "chrom": table["chrom"].astype(str).to_numpy(),
            "start": pd.to_numeric(table["start"], errors="coerce").to_numpy(),
            "end": pd.to_numeric(table["end"], errors="coerce").to_numpy(),
        }
    )
    if genes.empty:
        raise InputDataError(source, "the gene table has no gene rows")
    return genes.reset_index(drop=True), dropped.reset_index(drop=True)


def symbol_map(genes: pd.DataFrame) -> dict[str, str]:
    """Symbol -> stripped Ensembl ID. Symbols naming several genes map to the protein-coding one,
    else the first; callers count what did not map."""
    ordered = genes.assign(_pc=genes["gene_type"].eq("protein_coding")).sort_values(
        "_pc", ascending=False, kind="stable"
    )
    ordered = ordered.drop_duplicates("symbol", keep="first")
    return dict(zip(ordered["symbol"], ordered["gene_id"], strict=True))


def to_stripped_ids(identifiers, genes: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Map gene identifiers (versioned/unversioned Ensembl IDs or symbols) to stripped Ensembl IDs.

    Returns:
        ``(mapped, how)``: both indexed like ``identifiers``; ``mapped`` is NaN where nothing matched;
        ``how`` says ``ensembl``, ``symbol``, ``par_y`` or ``unmapped``.
    """
    ids = pd.Series([str(i) for i in identifiers], index=range(len(identifiers)), dtype=object)
    known = set(genes["gene_id"])
    by_symbol = symbol_map(genes)
    is_par = ids.str.endswith("_PAR_Y")
    is_ens = ids.str.match(r"^ENSG\d{11}")
    stripped = ids.where(~is_ens, ids.map(lambda v: strip_version(v) if v.startswith("ENSG") else v))
    mapped = pd.Series(index=ids.index, dtype=object)
    how = pd.Series("unmapped", index=ids.index, dtype=object)
    ens_ok = is_ens & ~is_par & stripped.isin(known)
    mapped[ens_ok] = stripped[ens_ok]
    how[ens_ok] = "ensembl"
    sym_ok = ~is_ens & ids.isin(by_symbol.keys())
    mapped[sym_ok] = ids[sym_ok].map(by_symbol)
    how[sym_ok] = "symbol"
    how[is_par] = "par_y"
    return mapped, how

"""Gene identifiers: GENCODE-like annotation tables, Ensembl versions, symbols, Entrez IDs, HGNC history.

Matching uses the Ensembl gene ID without its version (``ENSG00000198964``); reports keep the
versioned ID of the annotation (``ENSG00000198964.14``). GENCODE's pseudo-autosomal copies on chrY
(``ENSG00000182378.14_PAR_Y``) share their stripped ID with the chrX copy; they are dropped (GDC's
STAR files count PAR reads on the chrX copy, the ``_PAR_Y`` rows are all zero) and listed in the
dropped-genes table.

Identifiers as researchers have them (:func:`to_stripped_ids`): versioned or unversioned Ensembl IDs,
symbols, RSEM's ``SYMBOL|ENTREZ`` (``?|100130426`` when the symbol is unknown) and bare Entrez IDs.
Symbols and Entrez IDs that the annotation does not know are looked up in an optional symbol-history
table in the HGNC complete-set layout (:func:`prepare_history`): current, previous and alias symbols
and Entrez IDs, each used only when it names one gene.
"""

from __future__ import annotations

import re

import pandas as pd

from gb_kedro.errors import InputDataError, listed, source_of

ENSEMBL_GENE = re.compile(r"^ENSG\d{11}(\.\d+)?(_PAR_Y)?$")
RSEM_ID = re.compile(r"^[^|\s]+\|\d+$")  # SYMBOL|ENTREZ (TCGA RNASeqV2 / RSEM "gene_id" column)
ENTREZ_ID = re.compile(r"^\d+$")
ANNOTATION_COLUMNS = ["gene_id", "gene_name", "gene_type", "chrom", "start", "end"]

# Other spellings of the annotation columns (Ensembl BioMart, biomaRt, NCBI/HGNC-style exports).
ANNOTATION_ALIASES = {
    "gene_id": ("Gene stable ID version", "Gene stable ID", "ensembl_gene_id", "gene_id_version"),
    "gene_name": ("Gene name", "external_gene_name", "hgnc_symbol", "symbol", "Symbol"),
    "gene_type": ("Gene type", "gene_biotype", "biotype", "locus_type", "type_of_gene"),
    "chrom": ("Chromosome/scaffold name", "chromosome_name", "chromosome", "seqname", "seqnames", "chr"),
    "start": ("Gene start (bp)", "start_position"),
    "end": ("Gene end (bp)", "end_position"),
}

# The HGNC complete-set columns the symbol history uses (tab-separated; multi-valued fields joined by "|").
HISTORY_COLUMNS = ["symbol", "prev_symbol", "alias_symbol", "entrez_id", "ensembl_gene_id"]

# Chromosome order used by the chromosome grouping and reports.
CHROM_ORDER = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY", "chrM"]

# Gene-type spellings of GENCODE (protein_coding), NCBI gene_info (protein-coding) and HGNC locus_type
# (gene with protein product); normalised to GENCODE's.
_GENE_TYPE_SYNONYMS = {"gene_with_protein_product": "protein_coding"}


def strip_version(gene_id: str) -> str:
    """``ENSG00000198964.14`` -> ``ENSG00000198964``; ``..._PAR_Y`` keeps its suffix to stay distinct."""
    par = gene_id.endswith("_PAR_Y")
    core = gene_id[: -len("_PAR_Y")] if par else gene_id
    core = core.split(".", 1)[0]
    return core + ("_PAR_Y" if par else "")


def gene_labels(genes: list[str], gene_groups: pd.DataFrame) -> pd.DataFrame:
    """``genes`` (versioned or not) in their order: ``gene_id`` (unversioned), ``gene_id_versioned``, ``symbol``,
    ``group`` from the gene-group table (a gene missing there keeps its ID as version and symbol, no group)."""
    unversioned = pd.Index([strip_version(g) for g in genes])
    table = gene_groups.assign(gene=gene_groups["gene_id"].astype(str).map(strip_version)).set_index("gene")
    return pd.DataFrame(
        {
            "gene_id": unversioned,
            "gene_id_versioned": table["gene_id_versioned"]
            .reindex(unversioned)
            .fillna(pd.Series(list(genes), index=unversioned))
            .to_numpy(),
            "symbol": table["symbol"].reindex(unversioned).fillna(pd.Series(unversioned, index=unversioned)).to_numpy(),
            "group": table["group"].reindex(unversioned).to_numpy(),
        }
    )


def looks_like_ensembl(values, min_fraction: float = 0.5) -> bool:
    """True when at least ``min_fraction`` of ``values`` are Ensembl gene IDs."""
    values = [str(v) for v in values]
    if not values:
        return False
    hits = sum(bool(ENSEMBL_GENE.match(v)) for v in values)
    return hits / len(values) >= min_fraction


def normalise_chrom(value) -> str:
    """``1`` / ``chr1`` -> ``chr1``; ``X`` -> ``chrX``; ``MT`` / ``M`` / ``chrMT`` -> ``chrM``; scaffolds kept."""
    text = str(value).strip()
    core = text[3:] if text.lower().startswith("chr") else text
    if core.upper() in ("M", "MT"):
        return "chrM"
    if core.upper() in ("X", "Y"):
        return f"chr{core.upper()}"
    if core.isdigit():
        return f"chr{int(core)}"
    return text


def normalise_gene_type(value) -> str:
    """``protein_coding`` / ``protein-coding`` / ``protein-coding gene`` / ``gene with protein product``
    -> ``protein_coding`` (other types: lower case, ``-`` and spaces as ``_``, a trailing ``_gene`` cut)."""
    text = re.sub(r"[\s\-]+", "_", str(value).strip().lower())
    text = _GENE_TYPE_SYNONYMS.get(text, text)
    return text[: -len("_gene")] if text.endswith("_gene") and text != "_gene" else text


def _canonical_columns(annotation: pd.DataFrame) -> pd.DataFrame:
    """Rename the first present alias of each missing annotation column to its GENCODE name."""
    renames = {}
    for column, aliases in ANNOTATION_ALIASES.items():
        if column in annotation.columns:
            continue
        alias = next((a for a in aliases if a in annotation.columns and a not in renames), None)
        if alias is not None:
            renames[alias] = column
    return annotation.rename(columns=renames)


def prepare_annotation(annotation: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index a gene table by stripped Ensembl ID.

    Args:
        annotation: GENCODE layout (``gene_id`` versioned, ``gene_name``, ``gene_type``, ``chrom``,
            ``start``, ``end``; extra columns are kept), or the same columns as Ensembl BioMart /
            biomaRt name them (``Gene stable ID``, ``Gene name``, ``gene_biotype``,
            ``Chromosome/scaffold name`` ...). Chromosomes ``1``/``chr1``/``MT`` are normalised to
            ``chr1``/``chrM`` and gene types ``protein-coding (gene)`` to ``protein_coding``.

    Returns:
        ``(genes, dropped)``: ``genes`` has one row per stripped ID with columns ``gene_id``
        (stripped), ``gene_id_versioned``, ``symbol``, ``gene_type``, ``chrom``, ``start``, ``end``;
        ``dropped`` lists the ``_PAR_Y`` copies (``gene``, ``stage``, ``reason``).
    """
    source = source_of(annotation, "gene annotation")
    table = _canonical_columns(annotation)
    missing = [c for c in ANNOTATION_COLUMNS if c not in table.columns]
    if missing:
        raise InputDataError(
            source,
            f"not a GENCODE gene table: missing column(s) {missing} (found {listed(annotation.columns, 10)})",
        )
    table = table.copy()
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
            "gene_type": table["gene_type"].map(normalise_gene_type).to_numpy(),
            "chrom": table["chrom"].map(normalise_chrom).to_numpy(),
            "start": pd.to_numeric(table["start"], errors="coerce").to_numpy(),
            "end": pd.to_numeric(table["end"], errors="coerce").to_numpy(),
        }
    )
    if genes.empty:
        raise InputDataError(source, "the gene table has no gene rows")
    genes = genes.reset_index(drop=True)
    genes.attrs["source"] = source
    return genes, dropped.reset_index(drop=True)


def prepare_history(hgnc: pd.DataFrame, genes: pd.DataFrame) -> pd.DataFrame:
    """The symbol history: ``identifier``, ``kind`` (``symbol``, ``entrez``, ``previous_symbol``,
    ``alias_symbol``), ``gene_id`` (stripped Ensembl ID of an annotated gene).

    Args:
        hgnc: the HGNC complete set (``hgnc_complete_set.txt``: ``symbol``, ``prev_symbol``,
            ``alias_symbol``, ``entrez_id``, ``ensembl_gene_id``; multi-valued fields joined by ``|``).
            An empty table (no history given) gives an empty history.
        genes: the prepared annotation; rows whose Ensembl ID it lacks are left out.
    """
    out_columns = ["identifier", "kind", "gene_id"]
    if hgnc.empty and not len(hgnc.columns.difference(HISTORY_COLUMNS)):
        return pd.DataFrame(columns=out_columns)
    source = source_of(hgnc, "symbol-history table")
    missing = [c for c in HISTORY_COLUMNS if c not in hgnc.columns]
    if missing:
        raise InputDataError(source, f"not an HGNC complete-set table: missing column(s) {missing}")
    table = hgnc[HISTORY_COLUMNS].copy()
    table["gene_id"] = (
        table["ensembl_gene_id"]
        .astype("string")
        .str.strip()
        .map(lambda v: strip_version(v) if isinstance(v, str) and v else None)
    )
    table = table[table["gene_id"].isin(set(genes["gene_id"]))]
    entrez = pd.to_numeric(table["entrez_id"], errors="coerce")
    parts = [
        pd.DataFrame({"identifier": table["symbol"].astype(str), "kind": "symbol", "gene_id": table["gene_id"]}),
        pd.DataFrame(
            {
                "identifier": entrez.dropna().astype("int64").astype(str),
                "kind": "entrez",
                "gene_id": table["gene_id"][entrez.notna()],
            }
        ),
    ]
    for column, kind in (("prev_symbol", "previous_symbol"), ("alias_symbol", "alias_symbol")):
        values = table[["gene_id", column]].dropna()
        split = values.assign(identifier=values[column].astype(str).str.strip('"').str.split("|")).explode("identifier")
        split["identifier"] = split["identifier"].str.strip()
        split = split[split["identifier"] != ""]
        parts.append(pd.DataFrame({"identifier": split["identifier"], "kind": kind, "gene_id": split["gene_id"]}))
    history = pd.concat(parts, ignore_index=True).drop_duplicates()
    history.attrs["source"] = source
    return history.reset_index(drop=True)


def symbol_map(genes: pd.DataFrame) -> dict[str, str]:
    """Symbol -> stripped Ensembl ID. Symbols naming several genes map to the protein-coding one,
    else the first; callers count what did not map."""
    ordered = genes.assign(_pc=genes["gene_type"].eq("protein_coding")).sort_values(
        "_pc", ascending=False, kind="stable"
    )
    ordered = ordered.drop_duplicates("symbol", keep="first")
    return dict(zip(ordered["symbol"], ordered["gene_id"], strict=True))


def _lookup(history: pd.DataFrame | None) -> dict[str, dict[str, list[str]]]:
    """kind -> identifier -> the annotated genes it names (a list: several means ambiguous)."""
    if history is None or history.empty:
        return {}
    grouped = history.groupby(["kind", "identifier"], sort=False)["gene_id"].unique()
    out: dict[str, dict[str, list[str]]] = {}
    for (kind, identifier), ids in grouped.items():
        out.setdefault(kind, {})[identifier] = sorted(ids)
    return out


def identifier_kind(value: str) -> str:
    """``ensembl``, ``rsem`` (SYMBOL|ENTREZ), ``entrez`` or ``symbol``."""
    if value.startswith("ENSG") and ENSEMBL_GENE.match(value):
        return "ensembl"
    if RSEM_ID.match(value):
        return "rsem"
    if ENTREZ_ID.match(value):
        return "entrez"
    return "symbol"


def to_stripped_ids(
    identifiers, genes: pd.DataFrame, history: pd.DataFrame | None = None
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Map gene identifiers to stripped Ensembl IDs of the annotation.

    Order for each identifier: Ensembl ID; the annotation's symbol; then, with a ``history``
    (:func:`prepare_history`), the HGNC current symbol, the Entrez ID, a previous symbol, an alias --
    each only when it names exactly one annotated gene. ``SYMBOL|ENTREZ`` tries the symbol first, then
    the Entrez ID (``?|ENTREZ``: the Entrez ID only).

    Returns:
        ``(mapped, how, reason)``, indexed like ``identifiers``: ``mapped`` is NaN where nothing matched;
        ``how`` says ``ensembl``, ``symbol``, ``hgnc_symbol``, ``entrez``, ``previous_symbol``,
        ``alias_symbol``, ``par_y`` or ``unmapped``; ``reason`` says why an unmapped one did not map.
    """
    known = set(genes["gene_id"])
    by_symbol = symbol_map(genes)
    lookup = _lookup(history)
    have_history = bool(lookup)
    mapped, how, reason = [], [], []
    for raw in identifiers:
        gene, method, why = _resolve_identifier(str(raw).strip(), known, by_symbol, lookup, have_history)
        mapped.append(gene)
        how.append(method)
        reason.append(why)
    index = range(len(mapped))
    return (
        pd.Series(mapped, index=index, dtype=object),
        pd.Series(how, index=index, dtype=object),
        pd.Series(reason, index=index, dtype=object),
    )


def _resolve_identifier(value: str, known: set, by_symbol: dict, lookup: dict, have_history: bool):
    """(gene or None, how, reason) for one identifier."""
    kind = identifier_kind(value)
    if kind == "ensembl":
        if value.endswith("_PAR_Y"):
            return None, "par_y", "PAR_Y copy of a chrX gene"
        stripped = strip_version(value)
        if stripped in known:
            return stripped, "ensembl", ""
        return None, "unmapped", "Ensembl ID not in the gene annotation"
    symbol, entrez = value.split("|", 1) if kind == "rsem" else (None, value) if kind == "entrez" else (value, None)
    if symbol == "?":
        symbol = None
    ambiguous = []
    if symbol is not None:
        if symbol in by_symbol:
            return by_symbol[symbol], "symbol", ""
        ids = lookup.get("symbol", {}).get(symbol)
        if ids and len(ids) == 1:
            return ids[0], "hgnc_symbol", ""
    if entrez is not None:
        ids = lookup.get("entrez", {}).get(entrez)
        if ids and len(ids) == 1:
            return ids[0], "entrez", ""
    if symbol is not None:
        for hkind in ("previous_symbol", "alias_symbol"):
            ids = lookup.get(hkind, {}).get(symbol)
            if ids and len(ids) == 1:
                return ids[0], hkind, ""
            if ids:
                ambiguous.append(f"{hkind.replace('_', ' ')} of {len(ids)} genes ({listed(ids, 3)})")
    if ambiguous:
        return None, "unmapped", "ambiguous: " + "; ".join(ambiguous)
    if not have_history:
        what = "symbol not in the gene annotation" if symbol is not None else "Entrez ID"
        return None, "unmapped", f"{what} (no symbol-history table given to map it)"
    if symbol is not None and entrez is not None:
        return None, "unmapped", "neither the symbol nor the Entrez ID is in the annotation or the symbol history"
    if symbol is not None:
        return None, "unmapped", "symbol not in the annotation nor in the symbol history (current, previous, alias)"
    return None, "unmapped", "Entrez ID not in the symbol history (or its gene has no annotated Ensembl ID)"


def gene_like_fraction(labels, genes: pd.DataFrame | None = None, history: pd.DataFrame | None = None) -> float:
    """Share of ``labels`` that look like gene identifiers: Ensembl IDs, ``SYMBOL|ENTREZ``, annotated or
    historical symbols, and (with a history) Entrez IDs. Used to tell a matrix's gene axis."""
    labels = [str(v) for v in labels]
    if not labels:
        return 0.0
    symbols = set(genes["symbol"]) if genes is not None else set()
    history_ids = set(history["identifier"]) if history is not None and len(history) else set()
    hits = 0
    for label in labels:
        kind = identifier_kind(label)
        hits += kind in ("ensembl", "rsem") or label in symbols or label in history_ids
    return hits / len(labels)

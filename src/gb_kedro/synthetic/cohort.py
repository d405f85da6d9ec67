"""The embedded synthetic cohort: real file layouts, planted biology.

What is planted (all seeded, deterministic):

- **Genes**: ``n_genes`` protein-coding genes plus non-coding ones (to be filtered) in a GENCODE-layout
  table with versioned IDs; two chrX genes get GENCODE-style ``_PAR_Y`` copies.
- **PPI modules**: ``n_modules`` modules of unequal size; a directed degree-corrected planted partition
  (heavy-tailed degrees, mixing ``ppi_mu``) is the signalling network; its symmetrised version, with rows
  of other relations, is the PrimeKG ``kg.csv``. Some genes have no PPI edge. The edge list also holds
  protein complexes (``A_B``) and metabolite nodes, as OmniPath does.
- **Expression** (log scale, then negative-binomial counts with library-size variation):
  base level + primary-site program acting on whole modules + centre batch effect (shifts on random
  genes, partly confounded with site) + sample noise. The cohort is brain-like, has its own lab batch,
  a patient program on modules, and a **lineage program**: each lineage has a code on the morphology
  axes (3 levels each; codes at Hamming distance >= 2; lineages of one patient share 2 axes), and each
  axis moves 4 driver genes of one module. As many **decoy** genes, of matched base level and lineage
  variance, vary between lineages independently of the axes: they shape nothing.
- **Outcome**: a lineage's aggressiveness is a weighted sum of its axis levels (plus noise); patient
  OS/PFS follow the mean aggressiveness of the patient's lineages.

The slides issue draws tumour morphology from the same lineage codes, so image <-> RNA retrieval is
learnable through the drivers only; ``synthetic_truth/`` is read by evaluation alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gb_kedro.config import Config
from gb_kedro.genes import CHROM_ORDER
from gb_kedro.synthetic.graphs import module_sizes, planted_directed_graph

MORPHOLOGY_AXES = ["nucleus_size", "elongation", "arrangement", "chromatin_texture", "cell_density", "invasion"]
# The axes least readable inside one 256-px patch: no two lineages may differ on these alone.
WEAK_AXES = ("cell_density", "invasion")
# Weight of each axis level in a lineage's aggressiveness (invasion and density drive survival most).
AXIS_AGGRESSIVENESS = {
    "invasion": 0.6,
    "cell_density": 0.45,
    "nucleus_size": 0.3,
    "chromatin_texture": 0.2,
    "elongation": 0.1,
    "arrangement": 0.0,
}

SITES = [
    ("TCGA-GBM", "brain"),
    ("TCGA-LGG", "brain"),
    ("TCGA-BRCA", "breast"),
    ("TCGA-LUAD", "lung"),
    ("TCGA-KIRC", "kidney"),
    ("TCGA-PRAD", "prostate"),
    ("TCGA-COAD", "colorectal"),
    ("TCGA-SKCM", "skin"),
]
# Relative chromosome sizes in genes (roughly the human protein-coding distribution).
_CHROM_WEIGHTS = np.array(
    [
        2050,
        1250,
        1080,
        750,
        880,
        1040,
        920,
        680,
        780,
        740,
        1300,
        1030,
        320,
        610,
        600,
        850,
        1180,
        270,
        1470,
        540,
        230,
        440,
        840,
        45,
        13,
    ],
    dtype=float,
)


@dataclass(frozen=True)
class Preset(Config):
    """Size of a synthetic cohort (``conf/base/parameters_synthetic_cohort.yml`` holds the presets)."""

    SOURCE: ClassVar[str] = "conf/base/parameters_synthetic_cohort.yml"
    KEY: ClassVar[str] = "synthetic_cohort.presets.<preset>"
    n_genes: int
    n_noncoding: int
    n_modules: int
    ppi_mean_degree: float
    ppi_mu: float
    ppi_absent_fraction: float
    n_tcga_sites: int
    tcga_samples_per_site: int
    n_centers: int
    n_patients: int
    n_lineages: int
    drivers_per_axis: int
    n_axes: int
    mice_per_lineage: int
    slide_width: int
    slide_height: int
    slide_mpp: float


@dataclass(frozen=True)
class SyntheticConfig(Config):
    """``params:synthetic_cohort``: where the embedded cohort is written, which preset, its seed."""

    SOURCE: ClassVar[str] = "conf/base/parameters_synthetic_cohort.yml"
    KEY: ClassVar[str] = "synthetic_cohort"
    enabled: bool
    raw_dir: str
    preset: str
    seed: int
    render_workers: int  # slides rendered ahead in this many processes (the same pixels; 1 = in the run's process)
    presets: dict[str, Preset]


# ---------------------------------------------------------------------------------------------------
# Genes and PPI
# ---------------------------------------------------------------------------------------------------
def make_genes(preset: Preset, rng: np.random.Generator) -> pd.DataFrame:
    """Gene truth table: GENCODE columns + ``module`` (-1 = no PPI edge), ``base`` log level, ``length``."""
    n_pc, n_nc = preset.n_genes, preset.n_noncoding
    n = n_pc + n_nc
    numbers = rng.choice(np.arange(100_000, 300_000), size=n, replace=False)
    numbers.sort()
    gene_id = [f"ENSG99{num:09d}.{v}" for num, v in zip(numbers, rng.integers(1, 16, size=n), strict=True)]
    symbols = [f"GBS{i + 1:05d}" for i in range(n)]
    rng.shuffle(symbols)
    types = np.array(
        ["protein_coding"] * n_pc + list(rng.choice(["lncRNA", "processed_pseudogene", "miRNA", "snRNA"], size=n_nc))
    )
    order = rng.permutation(n)
    types = types[order]
    chroms = rng.choice(CHROM_ORDER, size=n, p=_CHROM_WEIGHTS / _CHROM_WEIGHTS.sum())
    start = rng.integers(10_000, 200_000_000, size=n)
    length = np.clip(rng.lognormal(np.log(2_500), 0.7, size=n), 300, 60_000).astype(int)
    genes = pd.DataFrame(
        {
            "gene_id": gene_id,
            "gene_name": symbols,
            "gene_type": types,
            "chrom": chroms,
            "start": start,
            "end": start + length * 8,
            "strand": rng.choice(["+", "-"], size=n),
            "length": length,
        }
    )
    chrom_rank = genes["chrom"].map({c: i for i, c in enumerate(CHROM_ORDER)})
    genes = genes.assign(_r=chrom_rank).sort_values(["_r", "start"]).drop(columns="_r").reset_index(drop=True)
    pc = np.where(genes["gene_type"] == "protein_coding")[0]
    module = np.full(n, -1)
    in_ppi = rng.permutation(pc)[: int(round(len(pc) * (1 - preset.ppi_absent_fraction)))]
    sizes = module_sizes(len(in_ppi), preset.n_modules, rng)
    module[in_ppi] = np.repeat(np.arange(preset.n_modules), sizes)
    genes["module"] = module
    base = np.clip(rng.normal(2.2, 1.3, size=n), -2.0, 5.5)
    base[genes["gene_type"] != "protein_coding"] -= 1.5
    genes["base"] = base
    return genes


def add_par_y(annotation: pd.DataFrame, rng: np.random.Generator, n: int = 2) -> pd.DataFrame:
    """Append GENCODE-style ``_PAR_Y`` copies of ``n`` chrX protein-coding genes."""
    x_genes = annotation[(annotation["chrom"] == "chrX") & (annotation["gene_type"] == "protein_coding")]
    if x_genes.empty:
        return annotation
    picks = x_genes.iloc[rng.choice(len(x_genes), size=min(n, len(x_genes)), replace=False)].copy()
    picks["gene_id"] = picks["gene_id"] + "_PAR_Y"
    picks["chrom"] = "chrY"
    return pd.concat([annotation, picks], ignore_index=True)


def make_ppi(genes: pd.DataFrame, preset: Preset, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Directed signalling edge list (symbols, signed, with complexes and metabolites) and PrimeKG ``kg.csv``."""
    membership = genes["module"].to_numpy()
    edges = planted_directed_graph(membership, preset.ppi_mean_degree, preset.ppi_mu, rng)
    sym = genes["gene_name"].to_numpy()
    signalling = pd.DataFrame(
        {
            "source": sym[edges["source"]],
            "interaction": rng.choice([1, -1], size=len(edges), p=[0.7, 0.3]),
            "target": sym[edges["target"]],
        }
    )
    # OmniPath-like extras: complexes of two same-module genes acting on a third, and metabolites.
    n_extra = max(3, len(edges) // 200)
    in_ppi = np.where(membership >= 0)[0]
    extra = []
    for _ in range(n_extra):
        a = rng.choice(in_ppi)
        same = in_ppi[membership[in_ppi] == membership[a]]
        b, c = rng.choice(same, size=2, replace=False)
        extra.append((f"{sym[a]}_{sym[b]}", 1, sym[c]))
        extra.append((f"CHEBI:{rng.integers(10_000, 99_999)}", 1, sym[c]))
    signalling = pd.concat([signalling, pd.DataFrame(extra, columns=signalling.columns)], ignore_index=True)

    # PrimeKG: undirected PPI stored in both directions, by NCBI-like IDs and symbols; other relations too.
    pairs = pd.DataFrame(np.sort(edges[["source", "target"]].to_numpy(), axis=1), columns=["a", "b"]).drop_duplicates()
    both = pd.concat([pairs, pairs.rename(columns={"a": "b", "b": "a"})], ignore_index=True)
    ncbi = rng.choice(np.arange(1, 200_000), size=len(genes), replace=False)
    ppi_rows = pd.DataFrame(
        {
            "relation": "protein_protein",
            "display_relation": "ppi",
            "x_index": both["a"].to_numpy(),
            "x_id": ncbi[both["a"]],
            "x_type": "gene/protein",
            "x_name": sym[both["a"]],
            "x_source": "NCBI",
            "y_index": both["b"].to_numpy(),
            "y_id": ncbi[both["b"]],
            "y_type": "gene/protein",
            "y_name": sym[both["b"]],
            "y_source": "NCBI",
        }
    )
    n_other = max(10, len(ppi_rows) // 10)
    targets = rng.choice(in_ppi, size=n_other)
    kinds = rng.choice(["drug_protein", "disease_protein", "anatomy_protein_present"], size=n_other)
    other_type = {
        "drug_protein": ("drug", "DrugBank"),
        "disease_protein": ("disease", "MONDO"),
        "anatomy_protein_present": ("anatomy", "UBERON"),
    }
    other_rows = pd.DataFrame(
        {
            "relation": kinds,
            "display_relation": [k.split("_")[0] for k in kinds],
            "x_index": 1_000_000 + np.arange(n_other),
            "x_id": [f"X{i:06d}" for i in range(n_other)],
            "x_type": [other_type[k][0] for k in kinds],
            "x_name": [f"{other_type[k][0]}_{i}" for i, k in enumerate(kinds)],
            "x_source": [other_type[k][1] for k in kinds],
            "y_index": targets,
            "y_id": ncbi[targets],
            "y_type": "gene/protein",
            "y_name": sym[targets],
            "y_source": "NCBI",
        }
    )
    kg = (
        pd.concat([ppi_rows, other_rows], ignore_index=True)
        .sample(frac=1.0, random_state=int(rng.integers(1 << 31)))
        .reset_index(drop=True)
    )
    return signalling, kg


# ---------------------------------------------------------------------------------------------------
# Lineages
# ---------------------------------------------------------------------------------------------------
def make_lineages(preset: Preset, rng: np.random.Generator, max_tries: int = 10_000) -> pd.DataFrame:
    """Patients, lineages and their morphology codes (levels -1/0/+1 per axis) and aggressiveness.

    Codes are pairwise at Hamming distance >= 2 and never differ only on :data:`WEAK_AXES`; lineages of one
    patient share the levels of two axes;
    on every axis no level holds more than 70 % of the lineages (else that axis's drivers would
    barely vary across the cohort and carry little signal).
    """
    axes = MORPHOLOGY_AXES[: preset.n_axes]
    for _ in range(1000):
        try:
            lineages = _draw_lineages(preset, rng, max_tries)
        except RuntimeError:  # a greedy draw can paint itself into a corner: draw again
            continue
        majority = max(lineages[a].value_counts(normalize=True).iloc[0] for a in axes)
        if majority <= 0.7:
            return lineages
    raise RuntimeError("could not draw lineage codes in which every morphology axis varies enough")


def _draw_lineages(preset: Preset, rng: np.random.Generator, max_tries: int) -> pd.DataFrame:
    axes = MORPHOLOGY_AXES[: preset.n_axes]
    per_patient = np.full(preset.n_patients, preset.n_lineages // preset.n_patients)
    per_patient[: preset.n_lineages % preset.n_patients] += 1
    codes: list[np.ndarray] = []
    # two lineages never differ only on the weakest axes (least readable inside one patch)
    strong = np.array([a not in WEAK_AXES for a in axes])
    rows = []
    for p, n_lin in enumerate(per_patient):
        shared_axes = rng.choice(len(axes), size=2, replace=False)
        shared_levels = rng.integers(-1, 2, size=2)
        made = 0
        for _ in range(max_tries):
            code = rng.integers(-1, 2, size=len(axes))
            code[shared_axes] = shared_levels
            if all((code != c).sum() >= 2 and (code[strong] != c[strong]).any() for c in codes):
                codes.append(code)
                made += 1
                rows.append(
                    {
                        "patient_id": f"P{p + 1:02d}",
                        "lineage_id": f"P{p + 1:02d}-L{made}",
                        **dict(zip(axes, code.tolist(), strict=True)),
                        "shared_axes": ",".join(axes[i] for i in sorted(shared_axes)),
                    }
                )
                if made == n_lin:
                    break
        if made < n_lin:
            raise RuntimeError(f"could not draw {n_lin} lineage codes at Hamming distance >= 2 for patient {p + 1}")
    lineages = pd.DataFrame(rows)
    weights = np.array([AXIS_AGGRESSIVENESS.get(a, 0.0) for a in axes])
    lineages["aggressiveness"] = lineages[axes].to_numpy() @ weights + rng.normal(0, 0.15, size=len(lineages))
    return lineages


def pick_drivers(genes: pd.DataFrame, preset: Preset, rng: np.random.Generator) -> pd.DataFrame:
    """Driver genes (``drivers_per_axis`` per axis, each axis inside one PPI module) and as many decoys
    (same modules, matched base level). Returns gene index, role, axis, module and effect size."""
    axes = MORPHOLOGY_AXES[: preset.n_axes]
    rows = []
    used: set[int] = set()
    modules = rng.permutation(preset.n_modules)
    for k, axis in enumerate(axes):
        module = int(modules[k % preset.n_modules])
        pool = genes.index[
            (genes["module"] == module) & (genes["gene_type"] == "protein_coding") & (genes["base"] > 1.5)
        ]
        pool = [i for i in pool if i not in used]
        chosen = rng.choice(pool, size=2 * preset.drivers_per_axis, replace=False)
        for j, g in enumerate(chosen):
            used.add(int(g))
            role = "driver" if j < preset.drivers_per_axis else "decoy"
            effect = rng.uniform(0.9, 1.5) * rng.choice([-1, 1])
            rows.append(
                {
                    "gene_index": int(g),
                    "role": role,
                    "axis": axis if role == "driver" else "",
                    "module": module,
                    "effect": float(effect),
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# Expression
# ---------------------------------------------------------------------------------------------------
def _counts(
    log_mean: np.ndarray,
    lengths: np.ndarray,
    library_sizes: np.ndarray,
    rng: np.random.Generator,
    dispersion: float = 0.08,
) -> np.ndarray:
    """Negative-binomial read counts (samples x genes) from log expression levels and library sizes."""
    rate = np.exp(log_mean) * lengths[None, :]
    rate = rate / rate.sum(axis=1, keepdims=True) * library_sizes[:, None]
    shape = 1.0 / dispersion
    return rng.poisson(rng.gamma(shape, rate / shape)).astype(np.int64)


def _tpm(counts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    per_kb = counts / (lengths[None, :] / 1_000.0)
    return per_kb / np.maximum(per_kb.sum(axis=1, keepdims=True), 1.0) * 1e6


def make_expression(
    genes: pd.DataFrame,
    lineages: pd.DataFrame,
    drivers: pd.DataFrame,
    preset: Preset,
    rng: np.random.Generator,
) -> dict:
    """Counts of TCGA-like and cohort samples.

    Returns a dict with ``tcga_counts`` / ``cohort_counts`` (samples x genes int arrays),
    ``tcga_samples`` (site, project, centre) and ``cohort_lineage_effects`` (lineage x gene log effects).
    """
    n_genes = len(genes)
    module = genes["module"].to_numpy()
    base = genes["base"].to_numpy()
    lengths = genes["length"].to_numpy().astype(float)
    n_mod = preset.n_modules
    loading = rng.normal(1.0, 0.3, size=n_genes)

    def module_program(scale: float) -> np.ndarray:
        activity = rng.normal(0.0, scale, size=n_mod)
        effect = np.where(module >= 0, activity[np.clip(module, 0, None)] * loading, 0.0)
        return effect

    sites = SITES[: preset.n_tcga_sites]
    site_programs = {}
    for project, _site in sites:
        site_programs[project] = module_program(0.8) + rng.normal(0, 0.35, size=n_genes) * (rng.random(n_genes) < 0.15)
    # GBM and LGG share the brain program, with a smaller difference between them.
    if "TCGA-GBM" in site_programs and "TCGA-LGG" in site_programs:
        site_programs["TCGA-LGG"] = site_programs["TCGA-GBM"] + module_program(0.3)
    centres = [rng.normal(0, 0.45, size=n_genes) * (rng.random(n_genes) < 0.3) for _ in range(preset.n_centers)]

    rows, log_means = [], []
    for s, (project, site) in enumerate(sites):
        # Centres are partly confounded with sites: each site sends most samples to one centre.
        p_centre = np.full(preset.n_centers, 0.3 / max(preset.n_centers - 1, 1))
        p_centre[s % preset.n_centers] = 0.7 if preset.n_centers > 1 else 1.0
        for _ in range(preset.tcga_samples_per_site):
            centre = int(rng.choice(preset.n_centers, p=p_centre / p_centre.sum()))
            log_means.append(
                base
                + site_programs[project]
                + centres[centre]
                + module_program(0.3)
                + rng.normal(0, 0.15, size=n_genes)
            )
            rows.append({"project_id": project, "primary_site": site, "centre": centre})
    tcga_log = np.vstack(log_means)
    tcga_lib = rng.lognormal(np.log(4e7), 0.35, size=len(rows))
    tcga_counts = _counts(tcga_log, lengths, tcga_lib, rng)

    brain = site_programs.get("TCGA-GBM", next(iter(site_programs.values())))
    lab_batch = rng.normal(0, 0.3, size=n_genes) * (rng.random(n_genes) < 0.3)
    patients = {p: module_program(0.5) for p in lineages["patient_id"].unique()}
    lineage_effects = np.zeros((len(lineages), n_genes))
    drivers_only = drivers[drivers["role"] == "driver"]
    decoys = drivers[drivers["role"] == "decoy"]
    for i, lineage in enumerate(lineages.itertuples(index=False)):
        for row in drivers_only.itertuples(index=False):
            lineage_effects[i, row.gene_index] = getattr(lineage, row.axis) * row.effect
        # Decoys: same magnitude, a level drawn independently of every axis.
        levels = rng.integers(-1, 2, size=len(decoys))
        lineage_effects[i, decoys["gene_index"].to_numpy()] = levels * decoys["effect"].to_numpy()
    cohort_log = np.vstack(
        [
            base
            + brain
            + lab_batch
            + patients[lin.patient_id]
            + lineage_effects[i]
            + module_program(0.15)
            + rng.normal(0, 0.1, size=n_genes)
            for i, lin in enumerate(lineages.itertuples(index=False))
        ]
    )
    cohort_lib = rng.lognormal(np.log(3e7), 0.3, size=len(lineages))
    cohort_counts = _counts(cohort_log, lengths, cohort_lib, rng)
    return {
        "tcga_counts": tcga_counts,
        "tcga_samples": pd.DataFrame(rows),
        "cohort_counts": cohort_counts,
        "lineage_effects": lineage_effects,
    }


def star_frame(genes: pd.DataFrame, counts: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """One sample's gene rows in the GDC STAR layout (``attrs['summary']`` holds the N_* rows)."""
    lengths = genes["length"].to_numpy().astype(float)
    tpm = _tpm(counts[None, :], lengths)[0]
    total = max(counts.sum(), 1)
    fpkm = counts * 1e9 / (lengths * total)
    pc = (genes["gene_type"] == "protein_coding").to_numpy()
    uq = max(np.percentile(counts[pc], 75), 1.0)
    fpkm_uq = counts * 1e9 / (lengths * uq * pc.sum())
    first = rng.binomial(counts, 0.5)
    frame = pd.DataFrame(
        {
            "gene_id": genes["gene_id"].to_numpy(),
            "gene_name": genes["gene_name"].to_numpy(),
            "gene_type": genes["gene_type"].to_numpy(),
            "unstranded": counts,
            "stranded_first": first,
            "stranded_second": counts - first,
            "tpm_unstranded": tpm,
            "fpkm_unstranded": fpkm,
            "fpkm_uq_unstranded": fpkm_uq,
        }
    )
    frame.attrs["summary"] = {
        k: int(total * f)
        for k, f in zip(
            ["N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"],
            rng.uniform([0.01, 0.02, 0.03, 0.005], [0.03, 0.05, 0.06, 0.015]),
            strict=True,
        )
    }
    return frame


# ---------------------------------------------------------------------------------------------------
# Everything, in the real layouts
# ---------------------------------------------------------------------------------------------------
def generate(preset: Preset, seed: int) -> dict:
    """All files of a synthetic cohort as in-memory tables (the Kedro nodes hand them to the catalog).

    Returns a dict with keys ``annotation``, ``signalling``, ``kg``, ``tcga_star`` (file ID -> STAR
    frame), ``tcga_sample_sheet``, ``cohort_matrix``, ``cohort_sample_sheet``, and the truth:
    ``truth_genes``, ``truth_drivers``, ``truth_lineages``, ``truth_tcga``, ``modules_gmt``.
    """
    rng = np.random.default_rng(seed)
    genes = make_genes(preset, rng)
    lineages = make_lineages(preset, rng)
    drivers = pick_drivers(genes, preset, rng)
    signalling, kg = make_ppi(genes, preset, rng)
    expr = make_expression(genes, lineages, drivers, preset, rng)

    annotation = add_par_y(
        genes[["gene_id", "gene_name", "gene_type", "chrom", "start", "end", "strand"]].assign(hgnc_id=""), rng
    )
    # GDC STAR files list every gene of the gene model, PAR_Y copies included (all zero).
    par = annotation[annotation["gene_id"].str.endswith("_PAR_Y")]
    star_genes = pd.concat([genes, par.assign(length=1000, module=-1, base=0.0)], ignore_index=True)

    tcga_star, tcga_sheet, truth_tcga = _tcga_files(expr, star_genes, par, preset, rng)
    cohort_matrix, cohort_sheet, missing = _cohort_files(genes, lineages, drivers, expr, rng)
    truth_genes, driver_rows, gmt_lines = _truth_tables(genes, lineages, drivers, expr, missing, preset)
    return {
        "annotation": annotation,
        "signalling": signalling,
        "kg": kg,
        "tcga_star": tcga_star,
        "tcga_sample_sheet": tcga_sheet,
        "cohort_matrix": cohort_matrix,
        "cohort_sample_sheet": cohort_sheet,
        "truth_genes": truth_genes,
        "truth_drivers": pd.DataFrame(driver_rows),
        "truth_lineages": lineages,
        "truth_tcga": truth_tcga,
        "modules_gmt": "\n".join(gmt_lines) + "\n",
    }


def _tcga_files(expr: dict, star_genes: pd.DataFrame, par: pd.DataFrame, preset: Preset, rng: np.random.Generator):
    """One GDC STAR file per TCGA sample (file ID -> frame), the GDC sample sheet and the TCGA truth table."""
    tcga_star, sheet_rows, truth_tcga = {}, [], []
    tss_codes = [f"{a}{b}" for a in "ABCDEFGHJKLMNPQRSTUVWXYZ" for b in "0123456789"]
    site_tss = {c: tss_codes[c] for c in range(preset.n_centers)}
    for i, row in enumerate(
        tqdm(
            expr["tcga_samples"].itertuples(index=False),
            total=len(expr["tcga_samples"]),
            desc="Synthetic TCGA",
            unit="sample",
            leave=False,
            disable=None,
        )
    ):
        file_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        file_name = f"{file_id}.rna_seq.augmented_star_gene_counts.tsv"
        counts = np.concatenate([expr["tcga_counts"][i], np.zeros(len(par), dtype=np.int64)])
        tcga_star[f"{file_id}/{file_name[:-4]}"] = star_frame(star_genes, counts, rng)
        case = f"TCGA-{site_tss[row.centre]}-{i + 1:04d}"
        sheet_rows.append(
            {
                "File ID": file_id,
                "File Name": file_name,
                "Data Category": "Transcriptome Profiling",
                "Data Type": "Gene Expression Quantification",
                "Project ID": row.project_id,
                "Case ID": case,
                "Sample ID": f"{case}-01A",
                "Sample Type": "Primary Tumor",
            }
        )
        truth_tcga.append(
            {
                "sample_id": f"{case}-01A",
                "project_id": row.project_id,
                "primary_site": row.primary_site,
                "centre": row.centre,
            }
        )

    return tcga_star, pd.DataFrame(sheet_rows), pd.DataFrame(truth_tcga)


def _cohort_files(
    genes: pd.DataFrame, lineages: pd.DataFrame, drivers: pd.DataFrame, expr: dict, rng: np.random.Generator
):
    """The cohort TPM matrix (genes x samples), its sample sheet with patient outcomes, and the mask of
    genes missing from the matrix."""
    # Cohort matrix: TPM, genes x samples, versioned IDs (some with a newer version, as another GENCODE
    # release would give), a few protein-coding genes missing (not measured by that lab's pipeline).
    lengths = genes["length"].to_numpy().astype(float)
    cohort_tpm = _tpm(expr["cohort_counts"], lengths)
    ids = genes["gene_id"].to_numpy().copy()
    bump = rng.random(len(ids)) < 0.1
    ids[bump] = [f"{g.split('.')[0]}.{int(g.split('.')[1]) + 1}" for g in ids[bump]]
    protected = set(drivers["gene_index"])
    missing = np.array([(rng.random() < 0.02) and (i not in protected) for i in range(len(ids))])
    sample_ids = [f"S-{lin}" for lin in lineages["lineage_id"]]
    cohort_matrix = pd.DataFrame(np.round(cohort_tpm.T[~missing], 4), columns=sample_ids)
    cohort_matrix.insert(0, "gene_id", ids[~missing])

    patient_aggr = lineages.groupby("patient_id")["aggressiveness"].mean()
    os_months = 20.9 * np.exp(-0.5 * patient_aggr + rng.normal(0, 0.15, size=len(patient_aggr)))
    pfs_months = os_months * rng.uniform(0.3, 0.5, size=len(patient_aggr))
    cohort_sheet = pd.DataFrame(
        {
            "sample_id": sample_ids,
            "patient_id": lineages["patient_id"],
            "lineage_id": lineages["lineage_id"],
            "os_months": lineages["patient_id"].map(os_months).round(1).to_numpy(),
            "pfs_months": lineages["patient_id"].map(pfs_months).round(1).to_numpy(),
        }
    )

    return cohort_matrix, cohort_sheet, missing


def _truth_tables(
    genes: pd.DataFrame, lineages: pd.DataFrame, drivers: pd.DataFrame, expr: dict, missing: np.ndarray, preset: Preset
):
    """The planted truth: per gene (role, axis), per lineage x driver/decoy (level, effect), the GMT lines."""
    role = pd.Series("none", index=genes.index)
    axis = pd.Series("", index=genes.index)
    role[drivers["gene_index"].to_numpy()] = drivers["role"].to_numpy()
    axis[drivers["gene_index"].to_numpy()] = drivers["axis"].to_numpy()
    truth_genes = pd.DataFrame(
        {
            "gene_id": genes["gene_id"],
            "symbol": genes["gene_name"],
            "gene_type": genes["gene_type"],
            "module": genes["module"],
            "role": role,
            "axis": axis,
            "in_cohort_matrix": ~missing,
        }
    )
    effects = expr["lineage_effects"]
    driver_rows = []
    for d in drivers.itertuples(index=False):
        for i, lin in enumerate(lineages.itertuples(index=False)):
            driver_rows.append(
                {
                    "lineage_id": lin.lineage_id,
                    "gene_id": genes.at[d.gene_index, "gene_id"],
                    "symbol": genes.at[d.gene_index, "gene_name"],
                    "role": d.role,
                    "axis": d.axis,
                    "module": d.module,
                    "level": getattr(lin, d.axis)
                    if d.role == "driver"
                    else int(np.sign(effects[i, d.gene_index] * d.effect))
                    if effects[i, d.gene_index]
                    else 0,
                    "log_effect": float(effects[i, d.gene_index]),
                }
            )
    gmt_lines = []
    for m in range(preset.n_modules):
        members = genes.loc[genes["module"] == m, "gene_name"].tolist()
        gmt_lines.append("\t".join([f"PLANTED_MODULE_{m:02d}", "synthetic PPI module", *members]))
    for ax in MORPHOLOGY_AXES[: preset.n_axes]:
        members = genes.loc[drivers.loc[drivers["axis"] == ax, "gene_index"], "gene_name"].tolist()
        gmt_lines.append(
            "\t".join([f"PLANTED_DRIVERS_{ax.upper()}", "lineage drivers of one morphology axis", *members])
        )
    return truth_genes, driver_rows, gmt_lines

"""Every gene ranking the project produces, scored against the embedded cohort's planted truth
(``synthetic_truth/drivers.tsv``; read only here and in :mod:`gb_kedro.reporting.validation`).

The decoys are the negative control: as many genes as drivers, in the same PPI modules, with the same effect
sizes and a lineage level drawn independently of every morphology axis -- so expression variance cannot tell
them from the drivers by construction; only a ranking that follows morphology can. Per ranking: AUROC drivers
vs decoys (and vs every other gene), precision@n, decoys in the top n and top ``wide_top``, and a permutation
null of the driver-vs-decoy AUROC (labels shuffled among drivers and decoys). Per morphology axis: how many of
its drivers each ranking found.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from gb_kedro.config import GeneScoringConfig, ReportingConfig
from gb_kedro.genes import strip_version


def gene_roles(truth_drivers: pd.DataFrame) -> pd.DataFrame:
    """One row per planted gene (unversioned ID): role (driver / decoy) and axis (empty for decoys)."""
    genes = truth_drivers.assign(gene=truth_drivers["gene_id"].astype(str).map(strip_version))
    axis = genes["axis"] if "axis" in genes.columns else ""
    return genes.assign(axis=axis).drop_duplicates("gene").set_index("gene")[["role", "axis"]].fillna("")


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``positive`` (Mann-Whitney U / n1 n0; ties count one half)."""
    positive = np.asarray(positive, bool)
    n1, n0 = positive.sum(), (~positive).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auroc_null(scores: np.ndarray, positive: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """AUROCs of ``n`` random relabellings (the same number of positives), vectorised."""
    positive = np.asarray(positive, bool)
    n1, n0 = positive.sum(), (~positive).sum()
    if n == 0 or n1 == 0 or n0 == 0:
        return np.zeros(0)
    ranks = rankdata(scores)
    labels = np.tile(positive, (n, 1))
    labels = rng.permuted(labels, axis=1)
    return ((labels * ranks).sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def order(scores: pd.Series) -> list[str]:
    """Genes best first (ties keep the given order)."""
    return list(scores.index[np.argsort(-scores.to_numpy(float), kind="stable")])


def score_ranking(scores: pd.Series, roles: pd.DataFrame, top: int, cfg: GeneScoringConfig, rng) -> dict:
    """The honesty figures of one ranking (``scores``: unversioned gene ID -> score, higher = stronger)."""
    scores = scores.astype(float).fillna(-np.inf)
    role = roles["role"].reindex(scores.index).fillna("")
    driver, decoy = (role == "driver").to_numpy(), (role == "decoy").to_numpy()
    ranked = role.loc[order(scores)].to_numpy()
    planted = driver | decoy
    values = scores.to_numpy()
    null = auroc_null(values[planted], driver[planted], cfg.n_permutations, rng)
    vs_decoys = auroc(values[planted], driver[planted])
    return {
        "auroc_drivers_vs_decoys": vs_decoys,
        "auroc_drivers_vs_all": auroc(values, driver),
        f"precision_at_{top}": float((ranked[:top] == "driver").mean()),
        f"decoys_top_{top}": int((ranked[:top] == "decoy").sum()),
        f"decoys_top_{cfg.wide_top}": int((ranked[: cfg.wide_top] == "decoy").sum()),
        f"drivers_top_{cfg.wide_top}": int((ranked[: cfg.wide_top] == "driver").sum()),
        "null_auroc_p95": float(np.quantile(null, 0.95)) if len(null) else float("nan"),
        "permutation_p": float((1 + (null >= vs_decoys).sum()) / (1 + len(null))) if len(null) else float("nan"),
        "n_drivers": int(driver.sum()),
        "n_decoys": int(decoy.sum()),
        "n_genes": len(scores),
    }


def axis_recovery(scores: pd.Series, roles: pd.DataFrame, top: int, cfg: GeneScoringConfig) -> list[dict]:
    """Per morphology axis: its drivers in the top n / top ``wide_top`` and their AUROC against all decoys."""
    scores = scores.astype(float).fillna(-np.inf)
    role = roles.reindex(scores.index).fillna("")
    ranked = role.loc[order(scores)]
    decoy = (role["role"] == "decoy").to_numpy()
    rows = []
    for axis in sorted(a for a in role["axis"].unique() if a):
        mine = ((role["axis"] == axis) & (role["role"] == "driver")).to_numpy()
        found = ((ranked["axis"] == axis) & (ranked["role"] == "driver")).to_numpy()
        keep = mine | decoy
        rows.append(
            {
                "axis": axis,
                "n_drivers": int(mine.sum()),
                f"in_top_{top}": int(found[:top].sum()),
                f"in_top_{cfg.wide_top}": int(found[: cfg.wide_top].sum()),
                "auroc_vs_decoys": auroc(scores.to_numpy()[keep], mine[keep]),
            }
        )
    return rows


def score_rankings(
    rankings: dict[str, pd.Series], truth_drivers: pd.DataFrame, top: int, cfg: GeneScoringConfig, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scoring table (one row per ranking) and the per-axis recovery (ranking x axis)."""
    roles = gene_roles(truth_drivers)
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        [
            {
                "ranking": name,
                "label": RANKING_LABELS.get(name, f"morphology link: {name[5:]} features (patch encoder)"),
                **score_ranking(s, roles, top, cfg, rng),
            }
            for name, s in rankings.items()
        ]
    )
    axes = pd.DataFrame(
        [{"ranking": name, **row} for name, s in rankings.items() for row in axis_recovery(s, roles, top, cfg)]
    )
    genes = next(iter(rankings.values())).index
    expected, expected_axes = random_expectation(genes, roles, top, cfg)
    return pd.concat([table, pd.DataFrame([expected])], ignore_index=True), pd.concat(
        [axes, pd.DataFrame(expected_axes)], ignore_index=True
    )


def random_expectation(genes: pd.Index, roles: pd.DataFrame, top: int, cfg: GeneScoringConfig) -> tuple[dict, list]:
    """The figures a random gene order has on average (one random draw would be one sample of them: with 24
    drivers vs 24 decoys its AUROC has a standard deviation of ~0.08): AUROC 0.5, precision@n = drivers / genes,
    n x decoys / genes decoys in the top n."""
    role = roles.reindex(genes)
    n_genes, n_drivers, n_decoys = (
        len(genes),
        int((role["role"] == "driver").sum()),
        int((role["role"] == "decoy").sum()),
    )
    row = {
        "ranking": "random",
        "label": RANKING_LABELS["random"],
        "auroc_drivers_vs_decoys": 0.5,
        "auroc_drivers_vs_all": 0.5,
        f"precision_at_{top}": n_drivers / n_genes,
        f"decoys_top_{top}": top * n_decoys / n_genes,
        f"decoys_top_{cfg.wide_top}": cfg.wide_top * n_decoys / n_genes,
        f"drivers_top_{cfg.wide_top}": cfg.wide_top * n_drivers / n_genes,
        "null_auroc_p95": float("nan"),
        "permutation_p": float("nan"),
        "n_drivers": n_drivers,
        "n_decoys": n_decoys,
        "n_genes": n_genes,
    }
    axes = [
        {
            "ranking": "random",
            "axis": axis,
            "n_drivers": int(n),
            f"in_top_{top}": top * n / n_genes,
            f"in_top_{cfg.wide_top}": cfg.wide_top * n / n_genes,
            "auroc_vs_decoys": 0.5,
        }
        for axis, n in role.loc[role["role"] == "driver", "axis"].value_counts().sort_index().items()
    ]
    return row, axes


# The rankings scored, by key: a label for the tables and the report.
RANKING_LABELS = {
    "link_wsi": "morphology link: WSI-encoder embedding",
    "link_morphometry": "morphology link: morphometry features",
    "link_wsi_morphometry": "morphology link: WSI embedding + morphometry",
    "gradcam_seed_0": "Grad-CAM occurrence (Table 2, Table 1 model)",
    "gradcam_seeds": "Grad-CAM occurrence summed over seeds",
    "variance": "cohort expression variance",
    "random": "random order (expected value)",
}


def project_rankings(
    link: pd.DataFrame,
    occurrence: pd.DataFrame,
    summed: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cfg: ReportingConfig,
) -> dict[str, pd.Series]:
    """Every gene ranking the run produced, as unversioned gene ID -> score over the model genes: the
    morphology link per representation (R^2), Grad-CAM occurrence (Table 1 model; summed over seeds),
    cohort variance, then the morphology link of each patch encoder of your own (a random order is added by
    :func:`score_rankings` as its expected value)."""
    genes = link["gene_id_unversioned"].astype(str)
    rankings = {
        f"link_{kind.replace('+', '_')}": pd.Series(link[f"r2_{kind}"].to_numpy(), index=genes)
        for kind in cfg.morphology_link.representations
    }
    rankings["gradcam_seed_0"] = occurrence.set_index("gene_id_unversioned")["occurrence"].reindex(genes).fillna(0)
    rankings["gradcam_seeds"] = summed.set_index("gene_id_unversioned")["occurrence"].reindex(genes).fillna(0)
    columns = {strip_version(c): c for c in cohort_features.columns}
    rankings["variance"] = pd.Series(cohort_features[[columns[g] for g in genes]].var(axis=0).to_numpy(), index=genes)
    for kind in [c[3:] for c in link.columns if c.startswith("r2_")]:  # patch encoders of your own, scored last
        if kind not in cfg.morphology_link.representations:
            rankings[f"link_{kind}"] = pd.Series(link[f"r2_{kind}"].to_numpy(), index=genes)
    return rankings


def headline_metrics(table: pd.DataFrame) -> dict:
    """MLflow metrics ``genes/<ranking>/<metric>`` of the scoring table."""
    keep = [c for c in table.columns if c not in ("ranking", "label", "n_drivers", "n_decoys", "n_genes")]
    return {f"genes/{r['ranking']}/{c}": float(r[c]) for _, r in table.iterrows() for c in keep}

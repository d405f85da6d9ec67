"""The morphology-link gene table: which genes can be predicted from a lineage's images, for lineages the
regressor has never seen (HE2RNA's question, asked across lineages).

Per lineage, an image representation = the mean over its tumour patches of (a) the trained WSI encoder's
embedding (trained on the training lineages' patches with lineage labels; it never saw RNA) and/or (b) the
pixel-morphometry features (no training at all). Per gene, the lineage's expression (z-scored over lineages)
is predicted leave-one-out over lineages (or patients: all lineages of a patient out together) by ridge
regression on the standardised representation (its first principal components, fitted on the training
lineages), the penalty chosen per gene on the training lineages only
(scikit-learn ``RidgeCV``'s efficient leave-one-out, i.e. nested). Score = out-of-lineage R^2 (and Spearman r).
p-value: the whole leave-out procedure re-run with the lineages' images shuffled against their expression;
one null draw gives a null R^2 for every gene, and the null is pooled over genes (the genes are z-scored, so
their nulls are exchangeable) -> p = (1 + #null >= R^2) / (1 + #null); Benjamini-Hochberg q over genes.

Nothing here reads ``synthetic_truth``: the table is the same on real data.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import rankdata
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from statsmodels.stats.multitest import multipletests

from gb_kedro.config import MorphologyLinkConfig
from gb_kedro.errors import InputDataError, listed
from gb_kedro.genes import gene_labels
from gb_kedro.slides.morphometry import FEATURES

logger = logging.getLogger(__name__)

INDEX_COLUMNS = ("slide_id", "x", "y", "lineage_id", "patient_id", "mouse_id", "split", "held_out")


def lineage_means(per_patch: pd.DataFrame, lineages: list[str], source: str) -> pd.DataFrame:
    """Mean over each lineage's patches of the numeric feature columns (lineage x features, ``lineages`` order)."""
    columns = [c for c in per_patch.columns if c not in INDEX_COLUMNS]
    means = per_patch.groupby("lineage_id")[columns].mean()
    missing = sorted(set(lineages) - set(means.index))
    if missing:
        raise InputDataError(
            source,
            f"no tumour patch of {len(missing)} lineage(s) ({listed(missing)}): cannot relate their genes to images",
        )
    return means.loc[lineages].fillna(means.mean())


def representation(
    kind: str, wsi: pd.DataFrame, morphometry: pd.DataFrame, **others: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """``wsi``, ``morphometry``, ``wsi+morphometry`` (blocks concatenated) or another block of ``others`` (a
    patch encoder's, by name) and a weight per column applied after the per-fold standardisation:
    sqrt(all columns / (blocks x the block's columns)), so that each block carries the same total variance (96
    embedding dimensions would otherwise drown 20 morphometry features) and the total stays one per column (a
    single block: all weights 1)."""
    blocks = {"wsi": wsi, "morphometry": morphometry, **others}
    parts = [blocks[k] for k in kind.split("+")]
    width = sum(p.shape[1] for p in parts)
    weights = np.concatenate([np.full(p.shape[1], np.sqrt(width / (len(parts) * p.shape[1]))) for p in parts])
    return pd.concat(parts, axis=1), weights


def folds(groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-group-out folds: (training positions, held-out positions) per group, in group order."""
    groups = np.asarray(groups)
    return [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in pd.unique(groups)]


def zscore(values: np.ndarray) -> np.ndarray:
    sd = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def out_of_group_predictions(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    alphas: list[float],
    n_components: int | None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Each row of ``y`` [lineages, genes] predicted from ``x`` [lineages, dims] by a ridge fit on the other
    groups only: features standardised on the training rows and scaled by ``weights`` (one per column; none =
    all 1), optionally reduced to ``n_components`` principal components; targets centred on the training rows;
    the penalty per gene by leave-one-out on the training rows."""
    pred = np.zeros_like(y, dtype=float)
    scale = np.ones(x.shape[1]) if weights is None else np.asarray(weights, float)
    for train, test in folds(groups):
        mu, sd = x[train].mean(0), x[train].std(0)
        sd = np.where(sd > 0, sd, 1.0) / scale
        x_train, x_test = (x[train] - mu) / sd, (x[test] - mu) / sd
        if n_components:
            pca = PCA(n_components=min(n_components, len(train) - 1, x.shape[1])).fit(x_train)
            x_train, x_test = pca.transform(x_train), pca.transform(x_test)
        y_mean = y[train].mean(0)
        model = RidgeCV(alphas=alphas, alpha_per_target=True).fit(x_train, y[train] - y_mean)
        pred[test] = model.predict(x_test).reshape(len(test), -1) + y_mean
    return pred


def r2_scores(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Out-of-sample R^2 per column: 1 - SS(residual) / SS(around the mean of all rows); <= 0 = no skill; NaN for
    a column without variance (nothing to predict: such genes are dropped before scoring, :func:`link_table`)."""
    total = ((y - y.mean(0)) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1.0 - ((y - pred) ** 2).sum(0) / np.where(total > 0, total, 1.0), np.nan)


def spearman_scores(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Spearman r per column (vectorised: Pearson r of the column ranks)."""
    ry, rp = zscore(rankdata(y, axis=0)), zscore(rankdata(pred, axis=0))
    return (ry * rp).mean(0)


def link_scores(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    cfg: MorphologyLinkConfig,
    seed: int,
    weights: np.ndarray | None = None,
) -> dict:
    """R^2, Spearman r, pooled-permutation p and BH q per gene (``y`` z-scored here), plus the null values.
    ``weights``: per column of ``x``, as :func:`out_of_group_predictions`."""
    y = zscore(y)
    pred = out_of_group_predictions(x, y, groups, cfg.alphas, cfg.n_components, weights)
    r2 = r2_scores(y, pred)
    rng = np.random.default_rng(seed)
    null = np.concatenate(
        [np.zeros(0)]
        + [
            r2_scores(
                y,
                out_of_group_predictions(x[rng.permutation(len(x))], y, groups, cfg.alphas, cfg.n_components, weights),
            )
            for _ in range(cfg.n_permutations)
        ]
    )
    if len(null):
        null_sorted = np.sort(null)
        exceed = len(null) - np.searchsorted(null_sorted, r2, side="left")
        p = (1.0 + exceed) / (1.0 + len(null))
    else:
        p = np.full(len(r2), np.nan)
    q = multipletests(p, method="fdr_bh")[1] if len(null) else p
    return {"r2": r2, "spearman_r": spearman_scores(y, pred), "p_value": p, "q_value": q, "null": null}


def lineage_targets(cohort_features: pd.DataFrame, cohort_samples: pd.DataFrame) -> pd.DataFrame:
    """Lineage x gene expression (the mean of a lineage's RNA samples; one per lineage in the paper's design)."""
    lineage = cohort_samples.set_index("sample_id")["lineage_id"]
    unknown = sorted(set(cohort_features.index) - set(lineage.index))
    if unknown:
        raise InputDataError("cohort_samples", f"{len(unknown)} RNA sample(s) without a lineage: {listed(unknown)}")
    return cohort_features.groupby(lineage.loc[cohort_features.index].to_numpy()).mean().sort_index()


def link_table(
    wsi_embeddings: pd.DataFrame,
    morphometry_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    gene_groups: pd.DataFrame,
    cfg: MorphologyLinkConfig,
    seed: int,
    patch_embeddings: dict[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Every model gene scored with every configured image representation, then with each patch encoder of
    ``patch_embeddings`` (name -> per-patch embeddings; rows without features left out of its lineage means);
    rows ranked by ``cfg.rank_by``.

    Returns the table (rank, gene_id versioned, symbol, r2, spearman_r, p_value, q_value, group, then
    ``r2_<rep>`` / ``q_<rep>`` per representation) and a summary (lineages, folds, null sizes, genes at q < 0.05).
    """
    targets = lineage_targets(cohort_features, cohort_samples)
    lineages = [lab for lab in targets.index if lab in set(wsi_embeddings["lineage_id"])]
    if len(lineages) < cfg.min_lineages:
        raise InputDataError(
            "wsi_embeddings",
            f"{len(lineages)} lineage(s) with both RNA and tumour patches; the morphology-link table needs "
            f"reporting.morphology_link.min_lineages = {cfg.min_lineages}",
        )
    blocks = {
        "wsi": lineage_means(wsi_embeddings, lineages, "wsi_embeddings"),
        # the 20 baseline features (the richer set of the classifier row is not part of this table's definition)
        "morphometry": lineage_means(
            morphometry_features[[c for c in (*INDEX_COLUMNS, *FEATURES) if c in morphometry_features]],
            lineages,
            "morphometry_features",
        ),
    }
    others = {
        name: lineage_means(
            frame.dropna(subset=[c for c in frame.columns if c not in INDEX_COLUMNS]),
            lineages,
            f"{name}.patch_embeddings",
        )
        for name, frame in (patch_embeddings or {}).items()
    }
    patient = cohort_samples.drop_duplicates("lineage_id").set_index("lineage_id")["patient_id"]
    groups = np.asarray(lineages) if cfg.cv_unit == "lineage" else patient.loc[lineages].to_numpy()
    varies = np.ptp(targets.loc[lineages].to_numpy(float), axis=0) > 0
    constant = [g for g, v in zip(targets.columns, varies, strict=True) if not v]
    if constant:  # e.g. genes at 0 in every cohort sample: nothing to predict, and they would fill the null with 1.0
        logger.info(
            "morphology link: %d of %d genes are constant across the cohort's lineages and are not ranked (%s)",
            len(constant),
            len(varies),
            listed(constant),
        )
    targets = targets.loc[:, varies]
    y = targets.loc[lineages].to_numpy(float)
    labels = gene_labels(list(targets.columns), gene_groups)
    table = labels[["gene_id_versioned", "symbol", "group", "gene_id"]].set_axis(
        ["gene_id", "symbol", "group", "gene_id_unversioned"], axis=1
    )
    summary = {
        "n_lineages": len(lineages),
        "n_folds": len(folds(groups)),
        "cv_unit": cfg.cv_unit,
        "rank_by": cfg.rank_by,
        "n_genes": int(y.shape[1]),
        "genes_without_variance": len(constant),
        "representations": {},
    }
    for k, kind in enumerate([*cfg.representations, *others]):
        frame, weights = representation(kind, blocks["wsi"], blocks["morphometry"], **others)
        x = frame.to_numpy(float)
        scores = link_scores(x, y, groups, cfg, seed + k, weights)
        for name in ("r2", "spearman_r", "p_value", "q_value"):
            table[f"{name}_{kind}"] = scores[name]
        summary["representations"][kind] = {
            "dims": int(x.shape[1]),
            "n_null_values": int(len(scores["null"])),
            "null_r2_p95": float(np.quantile(scores["null"], 0.95)) if len(scores["null"]) else float("nan"),
            "genes_q_below_0.05": int((scores["q_value"] < 0.05).sum()),
            "median_r2": float(np.median(scores["r2"])),
        }
    lead = cfg.rank_by
    for name in ("r2", "spearman_r", "p_value", "q_value"):
        table[name] = table[f"{name}_{lead}"]
    table = table.sort_values(["r2", "gene_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    front = ["rank", "gene_id", "symbol", "r2", "spearman_r", "p_value", "q_value", "group"]
    return table[front + [c for c in table.columns if c not in front]], summary


def link_markdown(table: pd.DataFrame, n: int, rank_by: str) -> str:
    head = f"Ranked by out-of-lineage R^2 from the `{rank_by}` image representation.\n\n"
    rows = "".join(
        f"| {r.rank} | {r.gene_id} | {r.symbol} | {r.r2:.3f} | {r.spearman_r:.3f} | {r.q_value:.3g} | {r.group} |\n"
        for r in table.head(n).itertuples()
    )
    return (
        head + "| Rank | Gene ID | Symbol | R^2 | Spearman r | q | PPI group |\n|---|---|---|---|---|---|---|\n" + rows
    )


def link_figure(table: pd.DataFrame, summary: dict, representations: list[str], n_label: int) -> Figure:
    """R^2 of every gene from each representation (ranked), the first two against each other, top genes named."""
    fig = Figure(figsize=(9, 3.6), dpi=110)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for kind in representations:
        values = np.sort(table[f"r2_{kind}"].to_numpy())[::-1]
        ax1.plot(np.arange(1, len(values) + 1), values, label=kind)
        p95 = summary["representations"][kind]["null_r2_p95"]
        if np.isfinite(p95):
            ax1.axhline(p95, ls=":", lw=0.8, color=ax1.lines[-1].get_color())
    ax1.set_xscale("log")
    ax1.set_ylim(bottom=max(-1.0, ax1.get_ylim()[0]))
    ax1.set_xlabel("gene rank")
    ax1.set_ylabel("out-of-lineage R^2 (dotted: null 95th pct)")
    ax1.legend(fontsize=7)
    a, b = (representations + representations)[:2]
    ax2.scatter(table[f"r2_{a}"], table[f"r2_{b}"], s=4, alpha=0.5, color="grey")
    top = table.head(n_label)
    ax2.scatter(top[f"r2_{a}"], top[f"r2_{b}"], s=10, color="C3")
    for _, r in top.iterrows():
        ax2.annotate(str(r["symbol"]), (r[f"r2_{a}"], r[f"r2_{b}"]), fontsize=6)
    ax2.set_xlabel(f"R^2 from {a}")
    ax2.set_ylabel(f"R^2 from {b}")
    ax2.set_xlim(left=max(-1.0, ax2.get_xlim()[0]))
    ax2.set_ylim(bottom=max(-1.0, ax2.get_ylim()[0]))
    fig.suptitle(
        f"Morphology link: genes predicted from images of unseen lineages ({summary['n_lineages']} lineages)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig

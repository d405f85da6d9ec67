"""Aggressiveness: lineages clustered (k-means) by their multimodal RNA embedding; mice aggregated (mean
image embedding -> nearest cluster centroid, and a majority vote of their patches' retrieved lineage);
Kaplan-Meier curves of mouse survival by cluster and the patients' OS / PFS per cluster. The embeddings are the
model row's (the multimodal pipeline's ``multimodal_patch_embeddings`` and ``multimodal_rna_embeddings``):
nothing here runs a model.

**The unit is the lineage, not the mouse.** Mice of one lineage carry the same tumour and share its clusters, so
a log-rank test that counts them as independent animals is badly anti-conservative (on null survival with a
lineage effect it rejects most of the time). The p-value reported is a permutation test of the log-rank
statistic that respects the design (:func:`lineage_permutation_test`): lineage-level groups (RNA clusters) are
permuted across lineages, mouse-level groups (image clusters) keep their mice while whole lineages' survival
moves between lineages of the same size. The mice-as-independent log-rank p is shown beside it, labelled.
"""

from __future__ import annotations

import logging
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.cluster import KMeans

from gb_kedro.config import ReportingConfig
from gb_kedro.errors import source_of
from gb_kedro.slides.morphometry import numbered_columns

logger = logging.getLogger(__name__)

SURVIVAL_TEST_COLUMNS = [
    "analysis",
    "unit",
    "n",
    "lineages",
    "groups",
    "chi2",
    "p_value",
    "p_value_as_independent",
    "permutations",
]


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate (statsmodels' SurvfuncRight): (times, survival probabilities), starting at (0, 1)."""
    from statsmodels.duration.survfunc import SurvfuncRight

    fit = SurvfuncRight(np.asarray(time, float), np.asarray(event, int))
    return np.concatenate([[0.0], fit.surv_times]), np.concatenate([[1.0], fit.surv_prob])


def log_rank(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """Log-rank test (statsmodels' survdiff) of survival across groups: (chi-square, p-value)."""
    from statsmodels.duration.survfunc import survdiff

    if len(set(group)) < 2:
        return float("nan"), float("nan")
    chisq, p = survdiff(np.asarray(time, float), np.asarray(event, int), np.asarray(group))
    return float(chisq), float(p)


def log_rank_statistics(time: np.ndarray, event: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The log-rank chi-square of many group labellings of the same subjects at once (``groups`` [P, n], labels
    0..K-1; equal to statsmodels' ``survdiff`` for each row): O - E per group over the distinct event times and
    its hypergeometric covariance, (O - E)^T V^- (O - E) on K - 1 groups."""
    time, event = np.asarray(time, float), np.asarray(event, bool)
    groups = np.atleast_2d(np.asarray(groups, int))
    k = int(groups.max()) + 1
    times = np.unique(time[event])
    at_risk = (time[None, :] >= times[:, None]).astype(float)  # [J, n]
    dies = ((time[None, :] == times[:, None]) & event[None, :]).astype(float)
    onehot = np.eye(k)[groups]  # [P, n, K]
    n_jk = np.einsum("jn,pnk->pjk", at_risk, onehot)
    d_jk = np.einsum("jn,pnk->pjk", dies, onehot)
    n_j, d_j = at_risk.sum(1), dies.sum(1)
    share = n_jk / n_j[None, :, None]
    observed_minus_expected = (d_jk - d_j[None, :, None] * share).sum(1)  # [P, K]
    w = np.where(n_j > 1, d_j * (n_j - d_j) / np.maximum(n_j - 1, 1), 0.0)
    cov = np.einsum("j,pjk,kl->pkl", w, share, np.eye(k)) - np.einsum("j,pjk,pjl->pkl", w, share, share)
    u, v = observed_minus_expected[:, : k - 1], cov[:, : k - 1, : k - 1]
    return np.einsum("pk,pkl,pl->p", u, np.linalg.pinv(v), u)


def lineage_permutation_test(
    time: np.ndarray,
    event: np.ndarray,
    group: np.ndarray,
    lineage: np.ndarray,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Log-rank chi-square of ``group`` and its permutation p-value with the lineage as the unit: (chi2, p).

    When every lineage's mice share one group (RNA clusters), the lineages' labels are permuted across lineages.
    Otherwise (image clusters, one per mouse) each mouse keeps its group and whole lineages' survival (time and
    event of all their mice) is permuted between lineages with the same number of mice. p = (1 + #{null >= obs})
    / (1 + permutations)."""
    time, event = np.asarray(time, float), np.asarray(event, bool)
    codes, labels = pd.factorize(np.asarray(group))
    if len(labels) < 2:
        return float("nan"), float("nan")
    lineage = np.asarray(lineage)
    observed = float(log_rank_statistics(time, event, codes[None])[0])
    per_lineage = pd.Series(codes).groupby(lineage).nunique()
    units = pd.unique(lineage)
    members = [np.flatnonzero(lineage == u) for u in units]
    if (per_lineage == 1).all():  # lineage-level groups: permute the lineages' labels
        unit_label = np.array([codes[m[0]] for m in members])
        draws = np.empty((n_permutations, len(codes)), int)
        for b in range(n_permutations):
            shuffled = rng.permutation(unit_label)
            for m, lab in zip(members, shuffled, strict=True):
                draws[b, m] = lab
        null = log_rank_statistics(time, event, draws)
    else:  # mouse-level groups: move whole lineages' survival between lineages of the same size
        null = np.empty(n_permutations)
        by_size: dict[int, list[np.ndarray]] = {}
        for m in members:
            by_size.setdefault(len(m), []).append(np.sort(m))
        for b in range(n_permutations):
            order = np.arange(len(time))
            for same in by_size.values():
                for target, source in zip(same, [same[i] for i in rng.permutation(len(same))], strict=True):
                    order[target] = source
            null[b] = log_rank_statistics(time[order], event[order], codes[None])[0]
    return observed, float((1 + (null >= observed - 1e-9).sum()) / (1 + n_permutations))


def km_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, xlabel: str) -> Figure:
    fig = Figure(figsize=(6, 4.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for name, (t, s) in curves.items():
        ax.step(t, s, where="post", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.05)
    ax.set_title(textwrap.fill(title, 60), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _mice(index: pd.DataFrame, image_z: np.ndarray, centroids: np.ndarray) -> pd.DataFrame:
    """One row per mouse: lineage, patient, patches, the majority retrieved lineage and the image cluster."""
    mice = []
    for mouse, rows in index.groupby("mouse_id"):
        mean = image_z[rows.index].mean(0)
        mice.append(
            {
                "mouse_id": mouse,
                "lineage_id": rows["lineage_id"].iloc[0],
                "patient_id": rows["patient_id"].iloc[0],
                "n_patches": len(rows),
                "held_out_patches": int((rows["split"] == "test").sum()),
                "majority_lineage": rows["retrieved_lineage"].value_counts().index[0],
                "image_cluster": int(np.argmax(centroids @ mean / (np.linalg.norm(mean) + 1e-12))),
            }
        )
    return pd.DataFrame(mice)


def _with_survival(
    mice: pd.DataFrame, slide_manifest: pd.DataFrame, cluster_of: dict, k: int
) -> tuple[pd.DataFrame, dict]:
    """Mice with their lineage's RNA cluster, survival and event (when the manifest has ``survival_days``;
    ``event`` optional, 1 = death); clusters named C1.. by median survival (C1 = shortest), else by number."""
    manifest = slide_manifest.drop_duplicates("mouse_id").set_index("mouse_id")
    mice = mice[mice["lineage_id"].isin(cluster_of)].reset_index(drop=True)
    mice["rna_cluster"] = mice["lineage_id"].map(cluster_of)
    order = list(range(k))
    if "survival_days" in manifest.columns:
        mice["survival_days"] = mice["mouse_id"].map(manifest["survival_days"]).astype(float)
        mice["event"] = mice["mouse_id"].map(manifest["event"]).astype(int) if "event" in manifest.columns else 1
        order = mice.groupby("rna_cluster")["survival_days"].median().sort_values().index.tolist()
        order += [c for c in range(k) if c not in order]
    name = {c: f"C{i + 1}" for i, c in enumerate(order)}
    mice["rna_cluster"] = mice["rna_cluster"].map(name)
    mice["image_cluster"] = mice["image_cluster"].map(name)
    return mice, name


def _tests(mice: pd.DataFrame, samples: pd.DataFrame, n_permutations: int, seed: int) -> pd.DataFrame:
    """Log-rank tests with the lineage as the unit (``p_value``; see the module docstring) beside the log-rank that
    counts every mouse (or lineage, for the patients' outcomes) as independent (``p_value_as_independent``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for column in ("rna_cluster", "image_cluster"):
        chisq, p = lineage_permutation_test(
            mice["survival_days"], mice["event"], mice[column], mice["lineage_id"], n_permutations, rng
        )
        rows.append(
            {
                "analysis": f"mouse survival by {column.replace('_', ' ')}",
                "unit": "lineage",
                "n": len(mice),
                "lineages": mice["lineage_id"].nunique(),
                "groups": mice[column].nunique(),
                "chi2": chisq,
                "p_value": p,
                "p_value_as_independent": log_rank(mice["survival_days"], mice["event"], mice[column])[1],
                "permutations": n_permutations,
            }
        )
    for outcome in ("os_months", "pfs_months"):
        if outcome in samples.columns and samples[outcome].notna().any():
            ok = samples[outcome].notna()
            part = samples[ok]
            ones = np.ones(len(part))
            chisq, p = lineage_permutation_test(
                part[outcome], ones, part["cluster"], part["lineage_id"], n_permutations, rng
            )
            rows.append(
                {
                    "analysis": f"patient {outcome.split('_')[0].upper()} of lineages by cluster (descriptive: "
                    "lineages of one patient share it)",
                    "unit": "lineage",
                    "n": int(ok.sum()),
                    "lineages": part["lineage_id"].nunique(),
                    "groups": part["cluster"].nunique(),
                    "chi2": chisq,
                    "p_value": p,
                    "p_value_as_independent": log_rank(part[outcome], ones, part["cluster"])[1],
                    "permutations": n_permutations,
                }
            )
    return pd.DataFrame(rows)


def _summary(mice: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    survival = (
        {"median_survival_days": ("survival_days", "median"), "mean_survival_days": ("survival_days", "mean")}
        if "survival_days" in mice.columns
        else {}
    )
    summary = (
        mice.groupby("rna_cluster")
        .agg(lineages=("lineage_id", "nunique"), mice=("mouse_id", "size"), **survival)
        .reset_index()
        .rename(columns={"rna_cluster": "cluster"})
    )
    for outcome in ("os_months", "pfs_months"):
        if outcome in samples.columns:
            summary[f"mean_patient_{outcome}"] = summary["cluster"].map(samples.groupby("cluster")[outcome].mean())
    return summary


def _z(frame: pd.DataFrame) -> np.ndarray:
    return frame[numbered_columns(frame, "z")].to_numpy(np.float32)


def aggressiveness(
    patch_embeddings: pd.DataFrame,
    rna_embeddings: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    cfg: ReportingConfig,
):
    """(mice, cluster summary, log-rank tests, Kaplan-Meier figure) from the model row's embeddings of every
    tumour patch (with the RNA sample each retrieves) and of every cohort RNA sample."""
    samples = rna_embeddings[["sample_id"]].merge(cohort_samples, on="sample_id", how="left")
    rna_z = _z(rna_embeddings)
    k = min(cfg.survival.n_clusters, len(samples))
    labels = KMeans(k, n_init=cfg.survival.kmeans_n_init, random_state=cfg.seed).fit_predict(rna_z)
    index = patch_embeddings.reset_index(drop=True)
    image_z = _z(index)
    index["retrieved_lineage"] = index["retrieved_sample"].map(
        dict(zip(samples["sample_id"], samples["lineage_id"], strict=True))
    )
    centroids = np.stack([rna_z[labels == c].mean(0) for c in range(k)])
    mice, name = _with_survival(
        _mice(index, image_z, centroids), slide_manifest, dict(zip(samples["lineage_id"], labels, strict=True)), k
    )
    samples["cluster"] = [name[c] for c in labels]
    mouse_level = float((mice["majority_lineage"] == mice["lineage_id"]).mean())
    mice = mice.assign(majority_correct=mice["majority_lineage"] == mice["lineage_id"])
    if "survival_days" not in mice.columns:  # an optional analysis: skipped, said once
        logger.info(
            "aggressiveness: no survival_days column in %s: lineage clusters kept, survival tests skipped",
            source_of(slide_manifest, "the slide manifest"),
        )
        figure = Figure(figsize=(5, 1.2))
        figure.text(0.5, 0.5, "no survival_days in the slide manifest: survival not analysed", ha="center", fontsize=8)
        return mice, _summary(mice, samples), pd.DataFrame(columns=SURVIVAL_TEST_COLUMNS), figure
    tests = _tests(mice, samples, cfg.survival.n_permutations, cfg.seed)
    curves = {
        f"{c} ({(mice['rna_cluster'] == c).sum()} mice)": kaplan_meier(g["survival_days"], g["event"])
        for c, g in mice.groupby("rna_cluster")
    }
    p_mouse = tests.iloc[0]["p_value"]
    fig = km_figure(
        curves,
        f"Mouse survival by lineage cluster (multimodal RNA embedding, k={k}); log-rank p = {p_mouse:.2g} "
        "(lineage-permutation)",
        "days",
    )
    logger.info(
        "aggressiveness: %d clusters, log-rank p = %.3g (lineages permuted); mouse-level majority-vote lineage "
        "accuracy %.3f",
        k,
        p_mouse,
        mouse_level,
    )
    return mice, _summary(mice, samples), tests, fig

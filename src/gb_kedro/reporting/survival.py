"""Aggressiveness: lineages clustered (k-means) by their multimodal RNA embedding; mice aggregated (mean
image embedding -> nearest cluster centroid, and a majority vote of their patches' retrieved lineage);
Kaplan-Meier and log-rank (statsmodels) of mouse survival by cluster; the patients' OS / PFS per cluster."""

from __future__ import annotations

import logging
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.cluster import KMeans

from gb_kedro.config import MultimodalConfig, ReportingConfig, WSIEncodingConfig
from gb_kedro.errors import InputDataError
from gb_kedro.evaluation import retrieval
from gb_kedro.models.multimodal import MultimodalModel
from gb_kedro.multimodal import embed_images, embed_rna
from gb_kedro.slides.patches import decoded_patches

logger = logging.getLogger(__name__)


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
    """Mice with survival, event and their lineage's RNA cluster; clusters named C1.. by median survival (C1 = shortest)."""
    manifest = slide_manifest.drop_duplicates("mouse_id").set_index("mouse_id")
    if "survival_days" not in manifest.columns:
        raise InputDataError(
            "slide_manifest", "no survival_days column: the aggressiveness analysis needs mouse survival"
        )
    mice["survival_days"] = mice["mouse_id"].map(manifest["survival_days"]).astype(float)
    mice["event"] = mice["mouse_id"].map(manifest["event"]).astype(int) if "event" in manifest.columns else 1
    mice = mice[mice["lineage_id"].isin(cluster_of)].reset_index(drop=True)
    mice["rna_cluster"] = mice["lineage_id"].map(cluster_of)
    order = mice.groupby("rna_cluster")["survival_days"].median().sort_values().index.tolist()
    order += [c for c in range(k) if c not in order]
    name = {c: f"C{i + 1}" for i, c in enumerate(order)}
    mice["rna_cluster"] = mice["rna_cluster"].map(name)
    mice["image_cluster"] = mice["image_cluster"].map(name)
    return mice, name


def _tests(mice: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for column in ("rna_cluster", "image_cluster"):
        chisq, p = log_rank(mice["survival_days"], mice["event"], mice[column])
        rows.append(
            {
                "analysis": f"mouse survival by {column.replace('_', ' ')}",
                "n": len(mice),
                "groups": mice[column].nunique(),
                "chi2": chisq,
                "p_value": p,
            }
        )
    for outcome in ("os_months", "pfs_months"):
        if outcome in samples.columns and samples[outcome].notna().any():
            ok = samples[outcome].notna()
            chisq, p = log_rank(samples.loc[ok, outcome], np.ones(ok.sum()), samples.loc[ok, "cluster"])
            rows.append(
                {
                    "analysis": f"patient {outcome.split('_')[0].upper()} of lineages by cluster (lineages of a patient share it)",
                    "n": int(ok.sum()),
                    "groups": samples.loc[ok, "cluster"].nunique(),
                    "chi2": chisq,
                    "p_value": p,
                }
            )
    return pd.DataFrame(rows)


def _summary(mice: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    summary = (
        mice.groupby("rna_cluster")
        .agg(
            lineages=("lineage_id", "nunique"),
            mice=("mouse_id", "size"),
            median_survival_days=("survival_days", "median"),
            mean_survival_days=("survival_days", "mean"),
        )
        .reset_index()
        .rename(columns={"rna_cluster": "cluster"})
    )
    for outcome in ("os_months", "pfs_months"):
        if outcome in samples.columns:
            summary[f"mean_patient_{outcome}"] = summary["cluster"].map(samples.groupby("cluster")[outcome].mean())
    return summary


def aggressiveness(
    model: MultimodalModel,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    cfg: ReportingConfig,
    mm: MultimodalConfig,
    wsi: WSIEncodingConfig,
):
    """(mice, cluster summary, log-rank tests, Kaplan-Meier figure)."""
    samples = cohort_samples[cohort_samples["sample_id"].isin(cohort_features.index)].reset_index(drop=True)
    rna_z = embed_rna(
        model,
        cohort_features.loc[samples["sample_id"], model.meta["genes"]].to_numpy(np.float32),
        mm.evaluation.rna_batch_size,
    )
    k = min(cfg.survival.n_clusters, len(samples))
    labels = KMeans(k, n_init=cfg.survival.kmeans_n_init, random_state=cfg.seed).fit_predict(rna_z)
    index = patch_index.reset_index(drop=True)
    images = decoded_patches(index, slide_manifest, wsi.data, wsi.checkpoint_dir)
    image_z = embed_images(model, images, wsi.data, mm.evaluation.image_batch_size)
    _, ranked = retrieval(image_z, rna_z, top=1)
    index["retrieved_lineage"] = samples["lineage_id"].to_numpy()[ranked[:, 0]]
    centroids = np.stack([rna_z[labels == c].mean(0) for c in range(k)])
    mice, name = _with_survival(
        _mice(index, image_z, centroids), slide_manifest, dict(zip(samples["lineage_id"], labels, strict=True)), k
    )
    samples["cluster"] = [name[c] for c in labels]
    tests = _tests(mice, samples)
    curves = {
        f"{c} ({(mice['rna_cluster'] == c).sum()} mice)": kaplan_meier(g["survival_days"], g["event"])
        for c, g in mice.groupby("rna_cluster")
    }
    p_mouse = tests.iloc[0]["p_value"]
    fig = km_figure(
        curves,
        f"Mouse survival by lineage cluster (multimodal RNA embedding, k={k}); log-rank p = {p_mouse:.2g}",
        "days",
    )
    logger.info(
        "aggressiveness: %d clusters, log-rank p = %.3g; mouse-level majority-vote lineage accuracy %.3f",
        k,
        p_mouse,
        float((mice["majority_lineage"] == mice["lineage_id"]).mean()),
    )
    return (
        mice.assign(majority_correct=mice["majority_lineage"] == mice["lineage_id"]),
        _summary(mice, samples),
        tests,
        fig,
    )

"""Evaluation shared by the WSI and multimodal stages: retrieval (paper eq. 9) and its scores with 95 %
bootstrap intervals that resample slides, the non-deep colour baseline's retrieval, image-only 1-NN
lineage retrieval, Table 1's layout and the confusion figure."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def format_ci(row, name: str) -> str:
    """``0.908 (0.863-0.947)``: a metric and its 95 % interval (``<name>_ci_low`` / ``<name>_ci_high``)."""
    return f"{row[name]:.3f} ({row[name + '_ci_low']:.3f}-{row[name + '_ci_high']:.3f})"


def retrieval(image_z: np.ndarray, rna_z: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 9: cosine similarity of every image embedding to every RNA embedding [Ni, Nr] and, per image,
    the indices of the ``top`` most similar RNA samples (best first) [Ni, top]."""
    a = image_z / np.linalg.norm(image_z, axis=1, keepdims=True).clip(1e-12)
    b = rna_z / np.linalg.norm(rna_z, axis=1, keepdims=True).clip(1e-12)
    sim = a @ b.T
    return sim, np.argsort(-sim, axis=1, kind="stable")[:, :top]


def _ci(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    return float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2))


def cluster_interval(correct, cluster, n_boot: int, seed: int) -> tuple[float, float]:
    """95 % bootstrap interval of the accuracy ``mean(correct)`` that resamples whole ``cluster``s (slides, or
    lineages: patches of one lineage share its answer, so the lineage is the unit a figure on unseen lineages
    generalises over) and pools their rows."""
    correct = np.asarray(correct, float)
    groups, inverse = np.unique(np.asarray(cluster), return_inverse=True)
    hits = np.bincount(inverse, weights=correct, minlength=len(groups))
    sizes = np.bincount(inverse, minlength=len(groups)).astype(float)
    draws = np.random.default_rng(seed).integers(len(groups), size=(n_boot, len(groups)))
    return _ci(hits[draws].sum(axis=1) / sizes[draws].sum(axis=1))


def retrieval_metrics(
    ranked: np.ndarray,
    true_lineage,
    slide_id,
    candidate_lineage,
    patient_of: dict,
    n_boot: int,
    seed: int,
) -> dict:
    """Scores of a retrieval: ``ranked`` [N, k] candidate indices per held-out patch, best first.

    Lineage accuracy (predicted sample's lineage == the patch's), patient accuracy (its patient), mean
    per-lineage (balanced) accuracy, top-k lineage accuracy, chance levels of a uniformly random pick, the
    share of errors that stay within the true patient, and 95 % bootstrap intervals that resample SLIDES
    (patches of one slide are not independent).
    """
    true_lineage = np.asarray(true_lineage)
    candidate_lineage = np.asarray(candidate_lineage)
    slide_id = np.asarray(slide_id)
    pred = candidate_lineage[ranked[:, 0]]
    lineage_hit = pred == true_lineage
    true_patient = np.array([patient_of[x] for x in true_lineage])
    pred_patient = np.array([patient_of[x] for x in pred])
    patient_hit = pred_patient == true_patient
    top_hit = (candidate_lineage[ranked] == true_lineage[:, None]).any(axis=1)
    cand_patients = np.array([patient_of[x] for x in candidate_lineage])
    wrong = ~lineage_hit
    metrics = {
        "n_patches": int(len(true_lineage)),
        "n_slides": int(len(np.unique(slide_id))),
        "n_lineages": int(len(np.unique(true_lineage))),
        "n_candidates": int(len(candidate_lineage)),
        "lineage_accuracy": float(lineage_hit.mean()),
        "patient_accuracy": float(patient_hit.mean()),
        "lineage_balanced_accuracy": float(pd.Series(lineage_hit).groupby(true_lineage).mean().mean()),
        f"lineage_top{ranked.shape[1]}_accuracy": float(top_hit.mean()),
        "lineage_chance": float(np.mean([(candidate_lineage == t).mean() for t in true_lineage])),
        "patient_chance": float(np.mean([(cand_patients == p).mean() for p in true_patient])),
        "errors_within_patient": float(patient_hit[wrong].mean()) if wrong.any() else float("nan"),
    }
    rng = np.random.default_rng(seed)
    slides, inverse = np.unique(slide_id, return_inverse=True)
    hits = np.stack([lineage_hit, patient_hit]).astype(float)
    per_slide_sum = np.stack([np.bincount(inverse, weights=h, minlength=len(slides)) for h in hits])
    per_slide_n = np.bincount(inverse, minlength=len(slides)).astype(float)
    draws = rng.integers(len(slides), size=(n_boot, len(slides)))
    counts = np.stack([np.bincount(d, minlength=len(slides)) for d in draws]).astype(
        float
    )  # [B, S] times each slide drawn
    boot = (counts @ per_slide_sum.T) / (counts @ per_slide_n)[:, None]  # [B, 2]
    for j, name in enumerate(("lineage_accuracy", "patient_accuracy")):
        metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = _ci(boot[:, j])
    return metrics


def feature_baseline_retrieval(
    train_features: np.ndarray,
    train_rna: np.ndarray,
    test_features: np.ndarray,
    candidate_rna: np.ndarray,
    alphas: np.ndarray,
):
    """A non-deep row of Table 1: per-patch image features (colour statistics, morphometry) -> RNA vector by
    a ridge map fit on the training pairs (alpha by cross-validation); a held-out patch is compared with the
    candidate RNA samples by cosine between its predicted RNA vector and theirs (both centred on the
    candidates' mean).

    Returns (similarities [N, n candidates], fitted model)."""
    centre = candidate_rna.mean(axis=0)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas))
    model.fit(train_features, train_rna - centre)
    predicted = model.predict(test_features)
    sim, _ = retrieval(predicted, candidate_rna - centre, top=1)
    return sim, model


# The held-out sets Table 1 reports (``held_out`` of the patch index) and, for unseen lineages, a second
# figure with only the unseen lineages' RNA samples as candidates.
SET_LABELS = {
    "patch": "held-out patches of seen slides (the paper's protocol)",
    "mouse": "unseen mice of seen lineages",
    "lineage": "unseen lineages, all cohort RNA samples as candidates (eq. 9)",
    "lineage_only": "unseen lineages, only their RNA samples as candidates",
}
SET_SHORT = {
    "patch": "Held-out patches",
    "mouse": "Unseen mice",
    "lineage": "Unseen lineages (all candidates)",
    "lineage_only": "Unseen lineages (unseen candidates)",
}


def score_held_out_sets(
    sim: np.ndarray,
    held_out,
    true_lineage,
    slide_id,
    candidate_lineage,
    patient_of: dict,
    top: int,
    n_boot: int,
    seed: int,
) -> dict[str, dict]:
    """:func:`retrieval_metrics` of each held-out set from one similarity matrix ``sim`` [N held-out patches,
    N candidate RNA samples] (higher = more similar); for unseen lineages also ``lineage_only``: the same
    patches against only the unseen lineages' samples. Keys in :data:`SET_LABELS` order."""
    held_out, true_lineage, slide_id = (np.asarray(a) for a in (held_out, true_lineage, slide_id))
    candidate_lineage = np.asarray(candidate_lineage)
    out: dict[str, dict] = {}
    for name in ("patch", "mouse", "lineage"):
        rows = held_out == name
        if not rows.any():
            continue
        choices = [("", np.ones(len(candidate_lineage), bool))]
        if name == "lineage":
            choices.append(("_only", np.isin(candidate_lineage, np.unique(true_lineage[rows]))))
        for suffix, cand in choices:
            part = sim[np.ix_(rows, cand)]
            ranked = np.argsort(-part, axis=1, kind="stable")[:, : min(top, int(cand.sum()))]
            out[name + suffix] = retrieval_metrics(
                ranked, true_lineage[rows], slide_id[rows], candidate_lineage[cand], patient_of, n_boot, seed
            )
    return out


def flat_set_metrics(sets: dict[str, dict]) -> dict:
    """``{"<set>/<metric>": value}`` of :func:`score_held_out_sets`' result (MLflow metric names)."""
    return {f"{name}/{k}": v for name, metrics in sets.items() for k, v in metrics.items()}


def table1(rows: list[dict]) -> pd.DataFrame:
    """Table 1 in long form: one row per (configuration, held-out set); patient and lineage accuracy with
    95 % intervals, then the extra columns (balanced, top-k, chance, errors within the patient, sizes; a row's
    lists, e.g. the genes of the expression bridge, stay in its metrics JSON)."""
    records = [
        {
            **{k: v for k, v in row.items() if k != "sets" and not isinstance(v, list | dict)},
            "held_out": name,
            "held_out_set": SET_LABELS[name],
            **metrics,
        }
        for row in rows
        for name, metrics in row["sets"].items()
    ]
    frame = pd.DataFrame(records)
    first = ["configuration", "split", "held_out", "patient_accuracy", "lineage_accuracy"]
    return frame[first + [c for c in frame.columns if c not in first]]


def table1_wide(table: pd.DataFrame, metric: str = "lineage_accuracy") -> pd.DataFrame:
    """One row per configuration, one column per held-out set: ``metric`` (95 % CI) cells."""
    sets = [s for s in SET_LABELS if s in set(table["held_out"])]
    configs = list(dict.fromkeys(table["configuration"]))
    wide = pd.DataFrame({"Configuration": configs})
    for name in sets:
        part = table[table["held_out"] == name].set_index("configuration")
        wide[SET_SHORT[name]] = [format_ci(part.loc[c], metric) if c in part.index else "" for c in configs]
    return wide


def table1_sizes(table: pd.DataFrame) -> pd.DataFrame:
    """Per held-out set: patches, slides, lineages behind each figure, candidates and chance levels."""
    first = table.drop_duplicates("held_out").set_index("held_out")
    first = first.loc[[s for s in SET_LABELS if s in first.index]]
    return pd.DataFrame(
        {
            "Held-out set": [SET_LABELS[s] for s in first.index],
            "Patches": first["n_patches"].astype(int).to_numpy(),
            "Slides": first["n_slides"].astype(int).to_numpy(),
            "Lineages": first["n_lineages"].astype(int).to_numpy(),
            "Candidates": first["n_candidates"].astype(int).to_numpy(),
            "Lineage chance": first["lineage_chance"].round(3).to_numpy(),
            "Patient chance": first["patient_chance"].round(3).to_numpy(),
        }
    )


def _markdown(frame: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in frame.itertuples(index=False)]
    return lines


def table1_markdown(table: pd.DataFrame) -> str:
    """Markdown of Table 1: lineage accuracy (95 % CI) per held-out set, then patient accuracy, then what is
    behind each figure (patches, slides, lineages, candidates, chance)."""
    split = table["split"].iloc[0]
    lines = [f"Lineage accuracy (95 % CI; split `{split}`):", "", *_markdown(table1_wide(table))]
    lines += ["", "Patient accuracy (95 % CI):", "", *_markdown(table1_wide(table, "patient_accuracy"))]
    lines += ["", "Behind each figure:", "", *_markdown(table1_sizes(table))]
    lines += ["", "Intervals: 95 % bootstrap over slides."]
    return "\n".join(lines) + "\n"


def paired_difference(correct, reference_correct, slide_id, n_boot: int, seed: int) -> dict:
    """One row's accuracy minus the reference row's on the SAME patches, with a bootstrap that resamples the same
    slides for both (patches of a slide are not independent; both rows answer on them): the difference, its 95 %
    interval and the share of resamples in which the row is at least as accurate."""
    frame = pd.DataFrame(
        {"slide": np.asarray(slide_id), "a": np.asarray(correct, float), "b": np.asarray(reference_correct, float)}
    )
    per = frame.groupby("slide").agg(a=("a", "sum"), b=("b", "sum"), n=("a", "size")).to_numpy(float)
    draws = np.random.default_rng(seed).integers(0, len(per), size=(n_boot, len(per)))
    sums = per[draws].sum(axis=1)  # [n_boot, 3]
    diff = (sums[:, 0] - sums[:, 1]) / sums[:, 2]
    accuracy, reference = per[:, 0].sum() / per[:, 2].sum(), per[:, 1].sum() / per[:, 2].sum()
    low, high = _ci(diff)
    return {
        "patches": int(per[:, 2].sum()),
        "slides": len(per),
        "accuracy": float(accuracy),
        "reference_accuracy": float(reference),
        "difference": float(accuracy - reference),
        "difference_ci_low": low,
        "difference_ci_high": high,
        "share_at_least_as_accurate": float((diff >= 0).mean()),
    }


def paired_rows(predictions: dict[str, pd.DataFrame], reference: str, n_boot: int, seed: int) -> pd.DataFrame:
    """Every row of ``predictions`` (row name -> its per-patch predictions: slide_id, x, y, lineage_id, held_out,
    predicted_lineage) minus ``reference`` per held-out set, on the patches both answered (:func:`paired_difference`).
    A row without predictions (not trained) is left out."""
    if reference not in predictions:
        raise KeyError(f"the paired reference row {reference!r} is not among the rows: {sorted(predictions)}")
    key = ["slide_id", "x", "y"]

    def hits(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[[*key, "held_out"]].copy()
        out["correct"] = (frame["predicted_lineage"] == frame["lineage_id"]).to_numpy()
        return out

    base = hits(predictions[reference])
    records = []
    for row, frame in predictions.items():
        if row == reference or frame.empty or "predicted_lineage" not in frame:
            continue
        both = hits(frame).merge(base, on=[*key, "held_out"], suffixes=("", "_reference"))
        for name in SET_LABELS:
            part = both[both["held_out"] == name]
            if len(part):
                records.append(
                    {
                        "row": row,
                        "reference": reference,
                        "held_out": name,
                        **paired_difference(part["correct"], part["correct_reference"], part["slide_id"], n_boot, seed),
                    }
                )
    return pd.DataFrame(records)


def paired_wide(table: pd.DataFrame) -> pd.DataFrame:
    """Rows x held-out sets of :func:`paired_rows`: the difference to the reference (95 % slide-paired interval)."""
    sets = [s for s in SET_LABELS if s in set(table["held_out"])]
    wide = pd.DataFrame({"Row": list(dict.fromkeys(table["row"]))})
    for name in sets:
        part = table[table["held_out"] == name].set_index("row")
        wide[SET_SHORT[name]] = [
            f"{part.loc[r, 'difference']:+.3f} ({part.loc[r, 'difference_ci_low']:+.3f} to "
            f"{part.loc[r, 'difference_ci_high']:+.3f})"
            if r in part.index
            else ""
            for r in wide["Row"]
        ]
    return wide


def paired_markdown(table: pd.DataFrame) -> str:
    """Markdown of :func:`paired_rows` (:func:`paired_wide`, under a line naming the reference)."""
    if table.empty:
        return "No row to compare.\n"
    lines = [
        f"Lineage accuracy minus `{table['reference'].iloc[0]}` on the same patches "
        "(95 % interval, slides resampled for both):"
    ]
    return "\n".join([*lines, "", *_markdown(paired_wide(table))]) + "\n"


def nearest_neighbour_eval(train_x, train_y, test_x, test_y, patient_of: dict) -> dict:
    """1-NN (cosine) lineage retrieval of test items against train items: accuracy, patient accuracy,
    balanced accuracy, chance, and the share of errors that stay within the true patient."""
    a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    b = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    pred = np.asarray(train_y)[np.argmax(b @ a.T, axis=1)]
    test_y = np.asarray(test_y)
    correct = pred == test_y
    wrong = ~correct
    same_patient = np.array([patient_of[p] == patient_of[t] for p, t in zip(pred, test_y, strict=True)])
    per_lineage = pd.Series(correct).groupby(test_y).mean()
    return {
        "accuracy": float(correct.mean()),
        "balanced_accuracy": float(per_lineage.mean()),
        "patient_accuracy": float(same_patient.mean()),
        "chance": 1.0 / len(set(train_y)),
        "errors_within_patient": float(same_patient[wrong].mean()) if wrong.any() else float("nan"),
        "n_test": int(len(test_y)),
        "predicted": pred,
    }


def confusion_figure(true, pred, title: str, xlabel: str = "retrieved lineage (1-NN)") -> Figure:
    """Confusion matrix (rows = true lineage, columns = retrieved lineage), counts of patches; the title wrapped."""
    labels = sorted(set(true) | set(pred))
    matrix = pd.crosstab(pd.Categorical(true, labels), pd.Categorical(pred, labels), dropna=False).to_numpy()
    fig = Figure(figsize=(6.5, 5.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true lineage")
    ax.set_title(textwrap.fill(title, 70), fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig

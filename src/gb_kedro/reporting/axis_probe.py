"""The RNA encoder judged by what it is for: can the lineages' morphology-axis levels (the programmes the
planted drivers carry) be read linearly from their RNA embeddings, for lineages the probe has not seen?

Per representation (the PPI-grouped encoder, the chromosome-grouped encoder, PCA of the encoders' input at
the same width, fitted on the TCGA training samples only), per axis: a multinomial logistic regression on the
standardised embedding, leave-one-lineage-out (or patient-out), accuracy of the held-out lineage's level;
beside it the share of the commonest level (chance). Neither encoder nor PCA saw the axis levels
(the encoders' cohort stage uses lineage identity, not morphology). Embedded cohort only
(``synthetic_truth/lineages.tsv``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gb_kedro.config import AxisProbeConfig
from gb_kedro.reporting.morphology_link import folds


def cohort_embedding(embeddings: pd.DataFrame, cohort_samples: pd.DataFrame) -> pd.DataFrame:
    """Lineage x embedding dims (the cohort rows of an RNA encoder's embedding table, mean per lineage)."""
    emb = embeddings[embeddings["source"] == "cohort"].set_index("sample_id")
    cols = [c for c in emb.columns if c.startswith("e")]
    lineage = cohort_samples.set_index("sample_id")["lineage_id"]
    return emb[cols].groupby(lineage.reindex(emb.index).to_numpy()).mean()


def pca_embedding(
    tcga_features: pd.DataFrame, tcga_split: pd.DataFrame, cohort_features: pd.DataFrame, cohort_samples, width: int
) -> pd.DataFrame:
    """PCA of the input (fitted on the TCGA training samples) at ``width``, of the cohort, mean per lineage."""
    train = tcga_split.loc[tcga_split["split"] == "train", "sample_id"]
    genes = [g for g in cohort_features.columns if g in tcga_features.columns]
    pca = PCA(n_components=min(width, len(train) - 1, len(genes)), random_state=0).fit(
        tcga_features.loc[train, genes].to_numpy()
    )
    z = pd.DataFrame(pca.transform(cohort_features[genes].to_numpy()), index=cohort_features.index)
    lineage = cohort_samples.set_index("sample_id")["lineage_id"]
    return z.groupby(lineage.loc[z.index].to_numpy()).mean()


def probe_accuracy(x: np.ndarray, levels: np.ndarray, groups: np.ndarray, cfg: AxisProbeConfig) -> tuple[float, float]:
    """(probe accuracy of the held-out groups' levels, leave-one-group-out; share of the commonest level = the
    accuracy of always answering it, the chance line: a leave-one-out majority vote would be biased against
    the held-out lineage's own level)."""
    hits = []
    for train, test in folds(groups):
        values, counts = np.unique(levels[train], return_counts=True)
        if len(values) < 2:
            hits.extend(levels[test] == values[0])
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.inverse_penalty, max_iter=2000))
        hits.extend(model.fit(x[train], levels[train]).predict(x[test]) == levels[test])
    return float(np.mean(hits)), float(np.unique(levels, return_counts=True)[1].max() / len(levels))


def axis_probe(
    representations: dict[str, pd.DataFrame], truth_lineages: pd.DataFrame, cfg: AxisProbeConfig
) -> pd.DataFrame:
    """Accuracy per representation (rows) and axis (columns), a ``mean`` column, and a ``chance`` row."""
    truth = truth_lineages.set_index("lineage_id")
    axes = [c for c in truth.columns if c not in ("patient_id", "shared_axes", "aggressiveness")]
    lineages = sorted(set(truth.index).intersection(*[set(r.index) for r in representations.values()]))
    groups = np.asarray(lineages) if cfg.cv_unit == "lineage" else truth.loc[lineages, "patient_id"].to_numpy()
    rows, chance = [], {}
    for name, rep in representations.items():
        x = rep.loc[lineages].to_numpy(float)
        row = {"representation": name, "dims": x.shape[1]}
        for axis in axes:
            row[axis], chance[axis] = probe_accuracy(x, truth.loc[lineages, axis].to_numpy(), groups, cfg)
        rows.append(row)
    rows.append({"representation": "chance (commonest level)", "dims": 0, **chance})
    table = pd.DataFrame(rows)
    table["mean"] = table[axes].mean(axis=1)
    table["n_lineages"] = len(lineages)
    return table

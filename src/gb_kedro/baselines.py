"""Non-deep baselines that every learned model is reported beside: colour statistics, the lineage classifier of
the strong baseline rows, and the expression bridge (a retrieval that can answer for lineages never trained on)."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from gb_kedro.config import LineageClassifierConfig

logger = logging.getLogger(__name__)


def colour_histogram_features(patches: np.ndarray, bins: int = 16, chunk: int = 64) -> np.ndarray:
    """Per-patch colour statistics: a ``bins``-bin histogram of each RGB channel (fractions of pixels),
    plus the channel means and standard deviations, all in [0, 1].

    The histogram is ``numpy.histogram``'s with ``bins`` equal bins over [0, 256], counted for every patch at once
    (a lookup from pixel value to bin, then ``bincount``), ``chunk`` patches at a time (memory).

    Args:
        patches: uint8 ``[N, H, W, 3]`` (a view of channel-first patches is fine).

    Returns:
        ``[N, 3 * bins + 6]`` float32.
    """
    edges = np.linspace(0, 256, bins + 1)
    # numpy.histogram's rule: [e_i, e_i+1), the last bin closed; for the 256 possible values, once
    lut = np.clip(np.searchsorted(edges, np.arange(256), side="right") - 1, 0, bins - 1)
    n = patches.shape[0]
    out = np.empty((n, 3 * bins + 6), np.float32)
    for a in range(0, n, chunk):
        flat = np.asarray(patches[a : a + chunk]).reshape(-1, patches.shape[1] * patches.shape[2], 3)
        m = flat.shape[0]
        codes = lut[flat] + (np.arange(m)[:, None, None] * bins)  # [m, pixels, 3]: the bin of each value
        hist = np.concatenate(
            [np.bincount(codes[:, :, c].ravel(), minlength=m * bins).reshape(m, bins) for c in range(3)], axis=1
        )
        hist = hist / flat.shape[1]
        mean = flat.mean(axis=1) / 255.0
        std = flat.std(axis=1) / 255.0
        out[a : a + m] = np.concatenate([hist, mean, std], axis=1)
    return out


CHANNELS = ("red", "green", "blue")


def colour_feature_names(bins: int) -> list[str]:
    """Column names of :func:`colour_histogram_features`: ``colour_<channel>_<bin>``, then the channel means and
    standard deviations (``colour_mean_<channel>``, ``colour_std_<channel>``)."""
    names = [f"colour_{c}_{b:02d}" for c in CHANNELS for b in range(bins)]
    return names + [f"colour_mean_{c}" for c in CHANNELS] + [f"colour_std_{c}" for c in CHANNELS]


def colour_columns(frame) -> list[str]:
    """The colour-feature columns of a table (index columns beside ``colour_*`` columns)."""
    return [c for c in frame.columns if str(c).startswith("colour_")]


def _logistic(inverse_penalty: float, max_iter: int) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=inverse_penalty, max_iter=max_iter))


def fit_lineage_classifier(
    x: np.ndarray, lineage: np.ndarray, mouse: np.ndarray, cfg: LineageClassifierConfig
) -> tuple[Pipeline, dict]:
    """The strong baselines' classifier of a patch's lineage, fit on training patches only: standardised features ->
    multinomial logistic regression, its inverse penalty chosen among ``cfg.inverse_penalties`` by accuracy on whole
    training mice held out in turn (``GroupKFold`` by ``mouse``: a penalty that carries to other animals, not to other
    patches of the same slide), then refit on every training patch.

    Returns (fitted pipeline, {"inverse_penalty": chosen C, "cv_accuracy": {C: mean accuracy}})."""
    lineage, mouse = np.asarray(lineage), np.asarray(mouse)
    n_splits = min(cfg.cv_folds, len(np.unique(mouse)))
    scores: dict[float, float] = {}
    for c in cfg.inverse_penalties:
        if n_splits < 2:  # one training mouse: nothing to choose by
            break
        hits = []
        for train, test in GroupKFold(n_splits=n_splits).split(x, lineage, mouse):
            model = _logistic(c, cfg.max_iter).fit(x[train], lineage[train])
            hits.append(model.predict(x[test]) == lineage[test])
        scores[float(c)] = float(np.concatenate(hits).mean())
    best = max(scores, key=lambda c: (scores[c], -c)) if scores else float(cfg.inverse_penalties[0])
    return _logistic(best, cfg.max_iter).fit(x, lineage), {"inverse_penalty": best, "cv_accuracy": scores}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def classifier_similarity(proba: np.ndarray, classes, candidate_lineage, candidate_rna: np.ndarray) -> np.ndarray:
    """Similarity [patches, candidates] of a lineage classifier's answer to each candidate RNA sample.

    A candidate of a lineage the classifier knows scores that lineage's probability (in [0, 1]), so eq. 9's top-1
    is the classifier's lineage. A candidate of a lineage it never saw scores ``cos - 1`` (below every known
    lineage), ``cos`` the cosine between it and the probability-weighted RNA of the known lineages (both centred
    on the candidates' mean): among unseen lineages only, the nearest to what the classifier saw."""
    candidate_lineage = np.asarray(candidate_lineage)
    classes = list(classes)
    centred = candidate_rna - candidate_rna.mean(axis=0)
    first = {lab: j for j, lab in reversed(list(enumerate(candidate_lineage)))}  # a lineage's first sample
    expected = proba @ centred[[first[c] for c in classes]]
    sim = _unit(expected) @ _unit(centred).T - 1.0
    known = {c: k for k, c in enumerate(classes)}
    for j, lab in enumerate(candidate_lineage):
        if lab in known:
            sim[:, j] = proba[:, known[lab]]
    return sim


def bridge_genes(
    lineage_x: np.ndarray, lineage_rna: np.ndarray, n_genes: int, alphas: np.ndarray, positive_only: bool = True
) -> tuple:
    """The genes whose expression follows the image features across the TRAINING lineages: per gene, the
    leave-one-lineage-out R^2 of a ridge map from the lineages' mean features (standardised) to the gene's
    expression (RidgeCV's exact leave-one-out, a penalty per gene). Returns (indices of the ``n_genes`` genes of
    highest R^2 that are above 0 (any R^2 with ``positive_only`` false), best first; R^2 of every gene, NaN for a
    gene constant across the lineages)."""
    y = lineage_rna - lineage_rna.mean(axis=0)
    spread = (y**2).sum(axis=0)
    varies = spread > 0
    r2 = np.full(y.shape[1], np.nan)
    x = StandardScaler().fit_transform(lineage_x)
    model = RidgeCV(alphas=alphas, alpha_per_target=True, store_cv_results=True).fit(x, y[:, varies])
    errors = model.cv_results_  # [lineages, genes, alphas]: squared leave-one-out errors
    best = np.array([list(alphas).index(a) for a in np.atleast_1d(model.alpha_)])
    loo = errors[:, np.arange(errors.shape[1]), best].sum(axis=0)
    r2[varies] = 1.0 - loo / spread[varies]
    order = np.argsort(-np.nan_to_num(r2, nan=-np.inf), kind="stable")
    keep = [g for g in order[:n_genes] if (r2[g] > 0 or not positive_only) and np.isfinite(r2[g])]
    return np.asarray(keep, dtype=int), r2


def _bridge_fit(train_x, train_lineage, lineage_rna: dict, n_genes: int, alphas: np.ndarray, positive_only=True):
    """Genes chosen over the lineages of ``lineage_rna`` and the patch-level ridge map to their standardised
    expression: (gene indices, R^2 of every gene, mean and spread of the kept genes, fitted map) or None when no gene
    follows the features."""
    lineages = sorted(lineage_rna)
    rna = np.stack([lineage_rna[lab] for lab in lineages])
    lineage_x = np.stack([train_x[train_lineage == lab].mean(axis=0) for lab in lineages])
    genes, r2 = bridge_genes(lineage_x, rna, n_genes, alphas, positive_only)
    if not len(genes):
        return None
    mean, std = rna[:, genes].mean(axis=0), rna[:, genes].std(axis=0).clip(1e-12)
    target = (np.stack([lineage_rna[lab] for lab in train_lineage])[:, genes] - mean) / std
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas)).fit(train_x, target)
    return genes, r2, mean, std, model


def _bridge_similarity(fit, test_x: np.ndarray, candidate_rna: np.ndarray) -> np.ndarray:
    genes, _, mean, std, model = fit
    return _unit(model.predict(test_x)) @ _unit((candidate_rna[:, genes] - mean) / std).T


def choose_bridge_genes(
    train_x, train_lineage, lineage_rna: dict, candidates: list[int], folds: int, alphas: np.ndarray
) -> dict[int, float]:
    """Inner validation of the number of genes on the TRAINING lineages alone: folds of whole training lineages held
    out in turn (``GroupKFold``), the bridge refit on the others, each held-out patch ranked among the held-out
    lineages' RNA (the unseen-lineage protocol in miniature). Returns {n genes: accuracy}."""
    lineages = np.asarray(sorted(lineage_rna))
    n_splits = min(folds, len(lineages) // 2)  # at least 2 held-out lineages per fold: a retrieval among them
    if n_splits < 2:
        logger.warning(
            "expression bridge: %d training lineages are too few to choose the number of genes (4 needed); %d kept",
            len(lineages),
            candidates[0],
        )
        return {}
    scores: dict[int, list] = {n: [] for n in candidates}
    for inner, outer in GroupKFold(n_splits=n_splits).split(lineages, groups=lineages):
        seen = set(lineages[inner])
        fit_rows = np.isin(train_lineage, list(seen))
        test_rows = ~fit_rows
        candidates_here = lineages[outer]
        cand_rna = np.stack([lineage_rna[lab] for lab in candidates_here])
        for n in candidates:
            fit = _bridge_fit(
                train_x[fit_rows], train_lineage[fit_rows], {lab: lineage_rna[lab] for lab in seen}, n, alphas
            )
            if fit is None:
                scores[n].append(np.zeros(test_rows.sum(), bool))
                continue
            sim = _bridge_similarity(fit, train_x[test_rows], cand_rna)
            scores[n].append(candidates_here[sim.argmax(axis=1)] == train_lineage[test_rows])
    return {n: float(np.concatenate(hits).mean()) for n, hits in scores.items()}


def expression_bridge(
    train_x: np.ndarray,
    train_lineage,
    lineage_rna: dict,
    test_x: np.ndarray,
    candidate_rna: np.ndarray,
    n_genes_candidates: list[int],
    inner_folds: int,
    alphas: np.ndarray,
) -> tuple[np.ndarray, dict]:
    """A retrieval that can answer for lineages never trained on: per-patch image features -> the expression of the
    genes that follow morphology (:func:`bridge_genes` over the training lineages) -> eq. 9's cosine to every
    candidate RNA sample in those genes.

    ``lineage_rna``: training lineage -> its RNA vector; genes are standardised by the training lineages' mean
    and spread (candidates too), a ridge map fit on the training patches predicts a held-out patch's vector. The
    number of genes is chosen among ``n_genes_candidates`` by :func:`choose_bridge_genes` (training lineages only).
    Nothing of a held-out lineage enters the fit but its RNA sample as a candidate (as in every row).

    Returns (similarities [test patches, candidates], {"genes": kept gene indices, "r2": R^2 of every gene,
    "ridge_alpha": the patch-level penalty, "n_genes": the chosen number, "inner_accuracy": {n: accuracy}, "model":
    the fitted patch-level map})."""
    train_lineage = np.asarray(train_lineage)
    inner = choose_bridge_genes(train_x, train_lineage, lineage_rna, n_genes_candidates, inner_folds, alphas)
    n_genes = max(inner, key=lambda n: (inner[n], -n)) if inner else n_genes_candidates[0]
    fit = _bridge_fit(train_x, train_lineage, lineage_rna, n_genes, alphas)
    if fit is None:  # nothing follows the features: keep the best genes anyway, and say the row is uninformative
        logger.warning(
            "expression bridge: no gene follows the image features across the %d training lineages (leave-one-out "
            "R^2 <= 0 for every gene); the row ranks by the %d best genes regardless and is not informative",
            len(lineage_rna),
            n_genes,
        )
        fit = _bridge_fit(train_x, train_lineage, lineage_rna, n_genes, alphas, positive_only=False)
    sim = _bridge_similarity(fit, test_x, candidate_rna)
    return sim, {
        "genes": fit[0],
        "r2": fit[1],
        "ridge_alpha": float(fit[4][-1].alpha_),
        "n_genes": n_genes,
        "inner_accuracy": inner,
        "model": fit[4],
    }

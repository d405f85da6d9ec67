"""Which morphology axes does each image representation read, for animals and lineages it never saw?

Per image representation (the WSI encoder's embedding, the multimodal model's image tower, the 40 morphometry
features, the colour statistics) and per planted morphology axis (nucleus size, elongation, arrangement, chromatin
texture, cell density, invasion; three levels each): a multinomial logistic regression of the patch's axis level
(its lineage's, from ``synthetic_truth/lineages.tsv``) on the standardised representation, fit on the TRAINING
patches only and scored on the patches of unseen mice and of unseen lineages; beside it the accuracy of always
answering the commonest training level (chance), and a 95 % bootstrap interval over the held-out lineages (unseen
lineages: a new lineage is the unit such a figure speaks for) or slides (unseen mice). The same probe per slide (the
unit of a slide-scale property such as cell density): each slide the mean of its patches, fit on the training
slides' training patches, scored on the slides of unseen mice and of unseen lineages. What each representation has
seen: the WSI encoder and the image tower were trained on the training patches' lineages (never on axis levels,
never on held-out patches); the morphometry and colour features are not trained at all. Last, the ceiling: the same
probe on what the generator knows each patch holds (:func:`~gb_kedro.synthetic.slides.oracle_features` of the drawn
tumour cells: mean log size and elongation, texture shares, size-relative density, neighbour regularity, boundary
length; scenes rebuilt from the generator's marker by the ``synthetic_oracle`` pipeline). Where the oracle itself
falls short, the cohort's per-patch signal of that axis does (the local-density noise blurs density in one patch):
no image representation can be asked for more. Embedded cohort only.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gb_kedro.baselines import colour_columns
from gb_kedro.config import ImageAxisProbeConfig
from gb_kedro.evaluation import cluster_interval
from gb_kedro.provenance import require_rows, same_rows
from gb_kedro.slides.morphometry import ALL_FEATURES, numbered_columns

SCORED_SETS = {
    "mouse": "unseen mice",
    "lineage": "unseen lineages",
    "mouse_slides": "unseen mice, per slide",
    "lineage_slides": "unseen lineages, per slide",
}
# per-slide sets: the patch set whose slides they score (each slide the mean of its patches)
SLIDE_SETS = {"mouse_slides": "mouse", "lineage_slides": "lineage"}
# what each held-out patch set's interval resamples: a figure on unseen lineages is a claim about other lineages
# (their patches and slides share the lineage's levels), one on unseen mice about other animals
BOOTSTRAP_UNITS = {"mouse": "slide", "lineage": "lineage"}


def _columns(frame: pd.DataFrame, index: pd.DataFrame, name: str, prefix: str) -> np.ndarray:
    """The ``prefix``-numbered columns of ``frame`` after checking its rows are the patch index's, in order."""
    require_rows(frame, index, name, "reporting")
    return frame[numbered_columns(frame, prefix)].to_numpy(float)


def representations(
    index: pd.DataFrame,
    wsi_embeddings: pd.DataFrame,
    multimodal_patch_embeddings: pd.DataFrame,
    morphometry_features: pd.DataFrame,
    colour_features: pd.DataFrame,
    patch_embeddings: dict[str, pd.DataFrame] | None = None,
) -> dict[str, np.ndarray]:
    """Per patch (patch-index order): the WSI encoder's embedding, the multimodal model's image tower (the model
    row), the 40 morphometry features, the colour statistics, and each patch encoder of ``patch_embeddings``
    (name -> ``e``-numbered embeddings; NaN rows: no feature row, left out of its probes)."""
    index = index.reset_index(drop=True)
    require_rows(morphometry_features, index, "morphometry_features", "reporting")
    require_rows(colour_features, index, "colour_features", "reporting")
    return {
        "wsi_encoder": _columns(wsi_embeddings, index, "wsi_embeddings", "e"),
        "multimodal_image": _columns(multimodal_patch_embeddings, index, "multimodal_patch_embeddings", "z"),
        "morphometry": morphometry_features[list(ALL_FEATURES)].to_numpy(float),
        "colour": colour_features[colour_columns(colour_features)].to_numpy(float),
        **{
            name: _columns(frame, index, f"{name}.patch_embeddings", "e")
            for name, frame in (patch_embeddings or {}).items()
        },
    }


ORACLE = "oracle (generator's cells)"


def with_oracle(
    representations: dict[str, np.ndarray], oracle_features: pd.DataFrame, index: pd.DataFrame
) -> dict[str, np.ndarray]:
    """``representations`` plus the generator's per-patch record (:data:`ORACLE`; ``oracle_features`` from the
    ``synthetic_oracle`` pipeline) when its rows are this patch index's; unchanged otherwise (your data, no
    default run yet, another cohort's file)."""
    if oracle_features.empty or not same_rows(oracle_features, index):
        return representations
    return {**representations, ORACLE: oracle_features.drop(columns=["slide_id", "x", "y"]).to_numpy(float)}


def truth_axes(truth_lineages: pd.DataFrame) -> list[str]:
    """The morphology axes of the planted truth (every column but the lineage's identity and summaries)."""
    return [c for c in truth_lineages.columns if c not in ("patient_id", "lineage_id", "shared_axes", "aggressiveness")]


def probe(
    x: np.ndarray, levels: np.ndarray, train: np.ndarray, test: np.ndarray, cfg: ImageAxisProbeConfig
) -> tuple[np.ndarray, float]:
    """(per ``test`` row: did a probe fit on ``train`` rows only read its level, accuracy of the commonest training
    level)."""
    return _fit_and_score(x[train], levels[train], x[test], levels[test], cfg)


def probe_slides(
    x: np.ndarray,
    levels: np.ndarray,
    slides: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    cfg: ImageAxisProbeConfig,
) -> tuple[np.ndarray, float, np.ndarray]:
    """The same probe with the slide as the unit: each slide's mean over its ``train`` patches (fit) or its ``test``
    patches (scored). Returns (per test slide: read or not, commonest training level's accuracy, the test slides)."""

    def means(rows):
        frame = pd.DataFrame(x[rows]).groupby(slides[rows], sort=True)
        firsts = pd.Series(levels[rows]).groupby(slides[rows], sort=True).first()
        return frame.mean().to_numpy(), firsts.to_numpy(), firsts.index.to_numpy()

    x_train, y_train, _ = means(train)
    x_test, y_test, test_slides = means(test)
    return (*_fit_and_score(x_train, y_train, x_test, y_test, cfg), test_slides)


def _fit_and_score(x_train, y_train, x_test, y_test, cfg: ImageAxisProbeConfig) -> tuple[np.ndarray, float]:
    values, counts = np.unique(y_train, return_counts=True)
    commonest = y_test == values[counts.argmax()]
    if len(values) < 2:
        return commonest, float(commonest.mean())
    model = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.inverse_penalty, max_iter=cfg.max_iter))
    model.fit(x_train, y_train)
    return model.predict(x_test) == y_test, float(commonest.mean())


def answers(
    representations: dict[str, np.ndarray],
    index: pd.DataFrame,
    truth_lineages: pd.DataFrame,
    cfg: ImageAxisProbeConfig,
) -> list[dict]:
    """The probe's answers, one entry per axis, scored set and representation: ``correct`` (per scored patch, or
    per slide for the ``*_slides`` sets), ``clusters`` (each answer's bootstrap unit: its lineage on unseen
    lineages, its slide on unseen mice; ``bootstrap_unit`` names it), ``chance`` and the counts. ``representations``
    and ``index`` as in :func:`image_axis_probe`; :func:`pooled` scores several runs' answers together."""
    truth = truth_lineages.set_index("lineage_id")
    known = index["lineage_id"].isin(truth.index).to_numpy()
    train = known & (index["split"] == "train").to_numpy()
    slides = index["slide_id"].astype(str).to_numpy()
    lineages = index["lineage_id"].astype(str).to_numpy()
    lineage_of_slide = dict(zip(slides, lineages))
    out = []
    for axis in truth_axes(truth_lineages):
        levels = index["lineage_id"].map(truth[axis]).to_numpy()
        for name, label in SCORED_SETS.items():
            patch_set = SLIDE_SETS.get(name, name)
            test = known & (index["held_out"] == patch_set).to_numpy()
            if not test.any():
                continue
            unit = BOOTSTRAP_UNITS[patch_set]
            for rep, x in representations.items():
                x = np.asarray(x, float)
                has = np.isfinite(x).all(axis=1)  # a patch encoder's patches without a feature row are left out
                if name in SLIDE_SETS:
                    correct, chance, scored = probe_slides(x, levels, slides, train & has, test & has, cfg)
                    clusters = np.array([lineage_of_slide[s] for s in scored] if unit == "lineage" else scored)
                    n_slides = len(scored)
                else:
                    correct, chance = probe(x, levels, train & has, test & has, cfg)
                    clusters = (lineages if unit == "lineage" else slides)[test & has]
                    n_slides = len(set(slides[test & has]))
                out.append(
                    {
                        "representation": rep,
                        "held_out": name,
                        "held_out_set": label,
                        "axis": axis,
                        "correct": np.asarray(correct, bool),
                        "clusters": clusters,
                        "bootstrap_unit": unit,
                        "chance": chance,
                        "patches": int((test & has).sum()),
                        "lineages": int(index.loc[test & has, "lineage_id"].nunique()),
                        "slides": n_slides,
                    }
                )
    return out


def image_axis_probe(
    representations: dict[str, np.ndarray],
    index: pd.DataFrame,
    truth_lineages: pd.DataFrame,
    cfg: ImageAxisProbeConfig,
    seed: int,
) -> pd.DataFrame:
    """Long table: representation, held-out set, axis, accuracy with its 95 % interval (ci_low, ci_high; resampling
    the set's lineages for unseen lineages, its slides for unseen mice: ``bootstrap_unit``), chance, patches,
    lineages, slides; ``representations``: name -> per-patch values [patches, dims] in ``index`` order (``index``:
    slide_id, lineage_id, split, held_out per patch). The ``*_slides`` sets score each held-out slide by the mean of
    its patches, with a probe fit on the training slides' means of their training patches."""
    rows = []
    for a in answers(representations, index, truth_lineages, cfg):
        low, high = cluster_interval(a["correct"], a["clusters"], cfg.n_boot, seed)
        rows.append(
            {
                **{k: a[k] for k in ("representation", "held_out", "held_out_set", "axis")},
                "accuracy": float(np.mean(a["correct"])),
                "ci_low": low,
                "ci_high": high,
                **{k: a[k] for k in ("bootstrap_unit", "chance", "patches", "lineages", "slides")},
            }
        )
    return pd.DataFrame(rows)


def pooled(runs: list[list[dict]], cfg: ImageAxisProbeConfig, seed: int) -> pd.DataFrame:
    """Several runs' :func:`answers` (training seeds, lineage splits of one cohort) scored together, per
    representation, held-out set and axis: the pooled accuracy (every run's answers) with a 95 % interval that
    resamples the set's lineages or slides ACROSS runs -- a lineage held out in two splits is one unit carrying
    both runs' answers, so repeating a run adds no confidence --, the mean, lowest and highest of the runs' own
    accuracies, the runs, the distinct units, and the mean chance."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        for a in run:
            groups.setdefault((a["representation"], a["held_out"], a["axis"]), []).append(a)
    rows = []
    for (rep, held_out, axis), parts in groups.items():
        correct = np.concatenate([a["correct"] for a in parts])
        clusters = np.concatenate([np.asarray(a["clusters"]).astype(str) for a in parts])
        low, high = cluster_interval(correct, clusters, cfg.n_boot, seed)
        per_run = [float(np.mean(a["correct"])) for a in parts]
        rows.append(
            {
                "representation": rep,
                "held_out": held_out,
                "held_out_set": parts[0]["held_out_set"],
                "axis": axis,
                "accuracy": float(correct.mean()),
                "ci_low": low,
                "ci_high": high,
                "bootstrap_unit": parts[0]["bootstrap_unit"],
                "units": len(set(clusters)),
                "runs": len(parts),
                "run_mean": float(np.mean(per_run)),
                "run_min": min(per_run),
                "run_max": max(per_run),
                "chance": float(np.mean([a["chance"] for a in parts])),
            }
        )
    return pd.DataFrame(rows)


def wide(table: pd.DataFrame, held_out: str) -> pd.DataFrame:
    """Representations x axes (accuracy) of one held-out set, a ``chance`` row (commonest training level)."""
    return _wide(table[table["held_out"] == held_out], "accuracy", lambda chance: chance)


def wide_intervals(table: pd.DataFrame, held_out: str) -> pd.DataFrame:
    """:func:`wide` with each accuracy written as ``0.39 (0.15-0.62)`` (its 95 % interval)."""
    part = table[table["held_out"] == held_out]
    cells = [f"{a:.2f} ({lo:.2f}-{hi:.2f})" for a, lo, hi in part[["accuracy", "ci_low", "ci_high"]].to_numpy()]
    return _wide(part.assign(cell=cells), "cell", lambda chance: [f"{v:.2f}" for v in chance])


def _wide(part: pd.DataFrame, values: str, chance_cells) -> pd.DataFrame:
    """``part``'s ``values`` column as representations x axes in table order, then the chance row
    (``chance_cells`` of the per-axis chance)."""
    out = part.pivot(index="representation", columns="axis", values=values)
    out = out.loc[list(dict.fromkeys(part["representation"])), list(dict.fromkeys(part["axis"]))]
    chance = part.drop_duplicates("axis").set_index("axis")["chance"]
    out.loc["chance (commonest training level)"] = chance_cells(chance.loc[out.columns].to_numpy())
    return out


def figure(table: pd.DataFrame) -> Figure:
    """One heat map per held-out set: accuracy of each representation (rows) on each axis (columns)."""
    sets = [s for s in SCORED_SETS if s in set(table["held_out"])]
    cols = min(max(len(sets), 1), 2)  # patches on the first row, slides on the second
    rows = -(-max(len(sets), 1) // cols)
    fig = Figure(figsize=(5.2 * cols, 3.4 * rows), dpi=110)
    for i, name in enumerate(sets):
        frame = wide(table, name)
        ax = fig.add_subplot(rows, cols, i + 1)
        image = ax.imshow(frame.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(frame.shape[1]), [c.replace("_", " ") for c in frame.columns], rotation=35, ha="right")
        ax.set_yticks(range(frame.shape[0]), frame.index, fontsize=7)
        for (r, c), v in np.ndenumerate(frame.to_numpy(float)):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
        ax.set_title(
            textwrap.fill(f"axis level read on {SCORED_SETS[name]} (probe fit on training patches)", 56), fontsize=8
        )
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig

"""The evaluation split, applied end to end (the encoders of a run never see its held-out data).

Every held-out patch has ``split == "test"`` and a ``held_out`` set (training patches: empty):

- ``patch`` (the paper's protocol): in every lineage the same number of patches is held out, drawn
  evenly across that lineage's training slides. Other patches of the same slides are trained on, so
  per-slide stain can identify a lineage: it is never reported alone.
- ``mouse``: whole mice (slides) held out, ``test_mice_per_lineage`` per lineage; no same-slide leakage.
- ``lineage``: whole lineages held out, their RNA and all their mice: does the model link unseen genes
  to unseen morphology? Held-out lineages come from patients that keep at least one training lineage.

``mode: all`` (the default) makes the three sets from one training, in that order of precedence: lineages
first, then one mouse of each remaining lineage, then a share of the patches of the remaining slides.
The single modes make one set.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from gb_kedro.config import HELD_OUT_SETS, SPLIT_MODES, SplitConfig
from gb_kedro.errors import InputDataError, listed
from gb_kedro.slides.tiling import threshold_effects

logger = logging.getLogger(__name__)

MODES = SPLIT_MODES
SETS = HELD_OUT_SETS


def assign_split(index: pd.DataFrame, options: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``split`` (``train`` / ``test``) and ``held_out`` (``patch`` / ``mouse`` / ``lineage``; ``""`` for
    training rows) columns to a patch index.

    Args:
        index: one row per tumour patch with ``slide_id``, ``mouse_id``, ``lineage_id``, ``patient_id``.
        options: ``mode``, ``test_fraction``, ``test_mice_per_lineage``, ``n_test_lineages``,
            ``min_test_lineages``, ``min_train_lineages``, ``seed``.

    Returns:
        ``(index, lineage_split)``; ``lineage_split`` has one row per lineage (``lineage_id``,
        ``patient_id``, ``split``: ``test`` only for lineages held out whole, else ``train``).
    """
    rng = np.random.default_rng(options.seed)
    out = index.copy()
    out["split"] = "train"
    out["held_out"] = ""
    lineages = out[["lineage_id", "patient_id"]].drop_duplicates().sort_values("lineage_id").reset_index(drop=True)
    lineages["split"] = "train"
    if out.empty:
        return out, lineages
    steps = SETS[::-1] if options.mode == "all" else (options.mode,)
    for held in steps:  # lineage, mouse, patch: each drawn among what the earlier ones left for training
        if held == "lineage":
            picks = _hold_out_lineages(lineages, options, rng)
            lineages.loc[lineages["lineage_id"].isin(picks), "split"] = "test"
            rows = out["lineage_id"].isin(picks)
        elif held == "mouse":
            rows = _hold_out_mice(out, options, rng)
        else:
            rows = _hold_out_patches(out, options, rng)
        out.loc[rows, "split"] = "test"
        out.loc[rows, "held_out"] = held
    return out, lineages


def n_held_out_lineages(n_lineages: int, options: SplitConfig) -> int:
    """How many lineages to hold out: ``n_test_lineages``, else ``test_fraction`` of them but at least
    ``min_test_lineages``; never so many that fewer than ``min_train_lineages`` are left."""
    wanted = options.n_test_lineages or max(options.min_test_lineages, int(round(options.test_fraction * n_lineages)))
    return max(0, min(wanted, n_lineages - options.min_train_lineages))


def _hold_out_lineages(lineages: pd.DataFrame, options: SplitConfig, rng: np.random.Generator) -> list[str]:
    n = n_held_out_lineages(len(lineages), options)
    per_patient = lineages.groupby("patient_id").size()
    eligible = lineages[lineages["patient_id"].map(per_patient) >= 2]
    picks: list[str] = []
    # One lineage per patient per round, patients in random order, so held-out lineages span patients; a
    # patient always keeps at least one training lineage.
    left = {p: list(rng.permutation(g["lineage_id"].to_numpy())) for p, g in eligible.groupby("patient_id")}
    while len(picks) < n:
        took = False
        for patient in rng.permutation(sorted(left)):
            if len(picks) >= n:
                break
            if len(left[patient]) > 1:
                picks.append(str(left[patient].pop()))
                took = True
        if not took:
            break
    if len(picks) < options.min_test_lineages:
        logger.warning(
            "split: %d lineage(s) held out whole (min_test_lineages %d; patients need >= 2 lineages and "
            "min_train_lineages %d stay): the unseen-lineage figures rest on few lineages",
            len(picks),
            options.min_test_lineages,
            options.min_train_lineages,
        )
    return sorted(picks)


def _hold_out_mice(out: pd.DataFrame, options: SplitConfig, rng: np.random.Generator) -> pd.Series:
    per = int(options.test_mice_per_lineage)
    rows = pd.Series(False, index=out.index)
    for lineage, part in out[out["split"] == "train"].groupby("lineage_id"):
        mice = np.sort(part["mouse_id"].unique())
        if len(mice) < per + 1:
            logger.warning(
                "lineage %s has %d mouse/mice with tumour patches: no unseen mouse of it is evaluated",
                lineage,
                len(mice),
            )
            continue
        held = rng.choice(mice, size=per, replace=False)
        rows[part.index[part["mouse_id"].isin(held)]] = True
    return rows


def _hold_out_patches(out: pd.DataFrame, options: SplitConfig, rng: np.random.Generator) -> pd.Series:
    rows = pd.Series(False, index=out.index)
    train = out[out["split"] == "train"]
    if train.empty:
        return rows
    per_lineage = train.groupby("lineage_id").size()
    n_test = max(1, int(round(options.test_fraction * per_lineage.median())))
    for _lineage, part in train.groupby("lineage_id"):
        k = min(n_test, len(part) // 2)
        if k == 0:
            continue
        # Round-robin over the lineage's slides so the held-out patches are spread evenly.
        shuffled = part.sample(frac=1.0, random_state=int(rng.integers(2**31)))
        order = shuffled.groupby("slide_id").cumcount().sort_values(kind="stable").index
        rows[order[:k]] = True
    return rows


def held_out_sets(index: pd.DataFrame) -> list[str]:
    """The held-out sets present in a split patch index, in Table 1's order."""
    present = set(index.loc[index["split"] == "test", "held_out"]) if "held_out" in index else set()
    return [s for s in SETS if s in present]


def require_training_patches(
    index: pd.DataFrame, lineage_split: pd.DataFrame, lineages, source: str, brown_ratios: np.ndarray | None = None
) -> None:
    """Every lineage that is not held out whole must keep training patches: a lineage with none (no tumour
    patch at all, or all of them held out) would be evaluated against an encoder that never saw it.

    Raises:
        InputDataError: naming ``source`` (the slide manifest) and the lineages, with what each brown-ratio
            threshold would keep of ``brown_ratios`` (every scored patch's) when given.
    """
    held_out = set(lineage_split.loc[lineage_split["split"] == "test", "lineage_id"])
    trained = set(index.loc[index["split"] == "train", "lineage_id"])
    lacking = sorted(set(map(str, lineages)) - held_out - set(map(str, trained)))
    if lacking:
        n_patches = index.groupby("lineage_id").size()
        detail = listed(f"{lin} ({int(n_patches.get(lin, 0))} tumour patches)" for lin in lacking)
        raise InputDataError(
            source,
            f"{len(lacking)} lineage(s) without any training patch after the split: {detail}; check their slides "
            "(slide_summary, QC thumbnails: tiling threshold, stain) or drop them from the manifest"
            + (
                f". Tumour patches each brown-ratio threshold keeps: {threshold_effects(brown_ratios)}"
                if brown_ratios is not None and len(brown_ratios)
                else ""
            ),
        )

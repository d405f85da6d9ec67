"""The evaluation split, applied end to end (the encoders of a run never see its held-out data).

- ``patch`` (the paper's protocol): in every lineage the same number of patches is held out, drawn
  evenly across that lineage's slides. Other patches of the same slides are trained on, so per-slide
  stain can identify a lineage: report it beside the two modes below.
- ``mouse``: whole mice (slides) held out, ``test_mice_per_lineage`` per lineage; no same-slide leakage.
- ``lineage``: whole lineages held out, their RNA and all their mice: does the model link unseen genes
  to unseen morphology? Held-out lineages come from patients that keep at least one training lineage.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from gb_kedro.config import SPLIT_MODES, SplitConfig
from gb_kedro.errors import InputDataError

logger = logging.getLogger(__name__)

MODES = SPLIT_MODES


def assign_split(index: pd.DataFrame, options: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add a ``split`` column (``train`` / ``test``) to a patch index.

    Args:
        index: one row per tumour patch with ``slide_id``, ``mouse_id``, ``lineage_id``, ``patient_id``.
        options: ``mode``, ``test_fraction``, ``test_mice_per_lineage``, ``n_test_lineages``, ``seed``.

    Returns:
        ``(index, lineage_split)``; ``lineage_split`` has one row per lineage (``lineage_id``,
        ``patient_id``, ``split``: ``test`` only for lineages held out whole, else ``train``).
    """
    mode = options.mode
    rng = np.random.default_rng(options.seed)
    fraction = float(options.test_fraction)
    out = index.copy()
    out["split"] = "train"
    lineages = out[["lineage_id", "patient_id"]].drop_duplicates().sort_values("lineage_id").reset_index(drop=True)
    lineages["split"] = "train"
    if out.empty:
        return out, lineages
    if mode == "patch":
        per_lineage = out.groupby("lineage_id").size()
        n_test = max(1, int(round(fraction * per_lineage.median())))
        for _lineage, part in out.groupby("lineage_id"):
            k = min(n_test, len(part) // 2)
            if k == 0:
                continue
            # Round-robin over the lineage's slides so the held-out patches are spread evenly.
            shuffled = part.sample(frac=1.0, random_state=int(rng.integers(2**31)))
            order = shuffled.groupby("slide_id").cumcount().sort_values(kind="stable").index
            out.loc[order[:k], "split"] = "test"
    elif mode == "mouse":
        per = int(options.test_mice_per_lineage)
        for lineage, part in out.groupby("lineage_id"):
            mice = np.sort(part["mouse_id"].unique())
            if len(mice) < per + 1:
                logger.warning(
                    "lineage %s has %d mouse/mice with tumour patches: all kept for training", lineage, len(mice)
                )
                continue
            held = rng.choice(mice, size=per, replace=False)
            out.loc[part.index[part["mouse_id"].isin(held)], "split"] = "test"
    else:
        n = options.n_test_lineages or max(1, int(round(fraction * len(lineages))))
        per_patient = lineages.groupby("patient_id").size()
        eligible = lineages[lineages["patient_id"].map(per_patient) >= 2]
        # One lineage per patient first, patients in random order, so held-out lineages span patients.
        picks: list[str] = []
        for patient in rng.permutation(eligible["patient_id"].unique()):
            if len(picks) >= n:
                break
            options_p = eligible.loc[eligible["patient_id"] == patient, "lineage_id"].to_numpy()
            picks.append(str(rng.choice(options_p)))
        if len(picks) < n:
            logger.warning(
                "split.mode lineage: only %d lineage(s) can be held out (patients need >= 2 lineages)", len(picks)
            )
        lineages.loc[lineages["lineage_id"].isin(picks), "split"] = "test"
        out.loc[out["lineage_id"].isin(picks), "split"] = "test"
    return out, lineages


def require_training_patches(index: pd.DataFrame, lineage_split: pd.DataFrame, lineages, source: str) -> None:
    """Every lineage that is not held out whole must keep training patches: a lineage with none (no tumour
    patch at all, or all of them held out) would be evaluated against an encoder that never saw it.

    Raises:
        InputDataError: naming ``source`` (the slide manifest) and the lineages.
    """
    held_out = set(lineage_split.loc[lineage_split["split"] == "test", "lineage_id"])
    trained = set(index.loc[index["split"] == "train", "lineage_id"])
    lacking = sorted(set(map(str, lineages)) - held_out - set(map(str, trained)))
    if lacking:
        n_patches = index.groupby("lineage_id").size()
        detail = ", ".join(f"{lin} ({int(n_patches.get(lin, 0))} tumour patches)" for lin in lacking[:5])
        raise InputDataError(
            source,
            f"{len(lacking)} lineage(s) without any training patch after the split: {detail}; check their slides "
            "(slide_summary, QC thumbnails: tiling threshold, stain) or drop them from the manifest",
        )

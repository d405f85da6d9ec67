"""Nodes of the ``synthetic_cohort`` pipeline."""

from __future__ import annotations

import logging

import pandas as pd

from gb_kedro.synthetic import marker
from gb_kedro.synthetic.cohort import Preset, SyntheticConfig, generate
from gb_kedro.synthetic.slides import ORACLE_FEATURES, lazy_scenes, patch_oracle, slide_specs

logger = logging.getLogger(__name__)


def claim_raw_directory(options: dict) -> dict:
    """The marker document of the cohort to generate (preset, seed, sizes, time), after checking that the
    raw folder is the generator's own (see :func:`gb_kedro.synthetic.marker.claim_raw_directory`)."""
    return marker.claim_raw_directory(SyntheticConfig.from_dict(options))


def generate_synthetic_cohort(marker: dict) -> dict:
    """Generate every raw file of the cohort described by ``marker`` (see :mod:`gb_kedro.synthetic.cohort`)."""
    preset = Preset.from_dict(marker["sizes"])
    logger.info("Generating the '%s' synthetic cohort (seed %d)", marker["preset"], marker["seed"])
    out = generate(preset, marker["seed"])
    out["tcga_star"] = dict(out["tcga_star"])
    return out


def generate_slides(marker: dict, lineages: pd.DataFrame, options: dict) -> tuple[dict, pd.DataFrame]:
    """One slide per mouse, ``mice_per_lineage`` mice per lineage, rendered lazily at save time.

    Returns ``(slides, manifest)``: slide ID -> callable returning the slide's scene (the catalog's
    ``PyramidTiffDataset`` writes it strip by strip; ``render_workers`` processes render the next slides ahead),
    and the slide manifest (``slide_id``,
    ``mouse_id``, ``lineage_id``, ``patient_id``, ``survival_days``, ``path`` relative to the manifest).
    """
    manifest, specs = slide_specs(marker, lineages)
    manifest["path"] = "images/" + manifest["slide_id"] + ".tif"
    logger.info("Rendering %d synthetic slides of %dx%d px", len(specs), specs[0].width, specs[0].height)
    slides = lazy_scenes(specs, SyntheticConfig.from_dict(options).render_workers)
    return slides, manifest


def summarise_synthetic_cohort(
    marker: dict, sheet: pd.DataFrame, cohort_sheet: pd.DataFrame, lineages: pd.DataFrame, manifest: pd.DataFrame
) -> dict:
    """A short JSON summary of what was generated (for the log and reports)."""
    return {
        **marker,
        "tcga_samples": int(len(sheet)),
        "tcga_projects": sheet["Project ID"].value_counts().to_dict(),
        "cohort_patients": int(cohort_sheet["patient_id"].nunique()),
        "cohort_lineages": int(cohort_sheet["lineage_id"].nunique()),
        "aggressiveness_range": [float(lineages["aggressiveness"].min()), float(lineages["aggressiveness"].max())],
        "mice": int(manifest["mouse_id"].nunique()),
        "slides": int(len(manifest)),
    }


def oracle_patch_features(marker: dict, lineages: pd.DataFrame, patch_index: pd.DataFrame) -> pd.DataFrame:
    """What the generator drew in each tumour patch (:func:`~gb_kedro.synthetic.slides.patch_oracle`), beside the
    index columns: the ceiling row of the image axis probe. Empty when the patches are not the generated
    cohort's."""
    index = patch_index.reset_index(drop=True)
    values = patch_oracle(marker, lineages, index) if marker else None
    if values is None:
        logger.info("synthetic_cohort: the patch index is not the generated cohort's: no oracle features")
        return pd.DataFrame(columns=["slide_id", "x", "y", *ORACLE_FEATURES])
    return pd.concat([index[["slide_id", "x", "y"]], pd.DataFrame(values, columns=list(ORACLE_FEATURES))], axis=1)

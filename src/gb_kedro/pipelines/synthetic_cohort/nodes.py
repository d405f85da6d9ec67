"""Nodes of the ``synthetic_cohort`` pipeline."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from gb_kedro.errors import InputDataError
from gb_kedro.synthetic.cohort import Preset, SyntheticConfig, generate
from gb_kedro.synthetic.slides import make_mice, make_scene

logger = logging.getLogger(__name__)

MARKER_NAME = ".gb_kedro_synthetic.json"
_IGNORED = {".gitkeep", MARKER_NAME, ".DS_Store"}


def claim_raw_directory(options: dict) -> dict:
    """Refuse to generate into a raw-data folder that holds files this generator did not write.

    The generator writes ``<raw_dir>/.gb_kedro_synthetic.json`` (this node's output) before anything
    else; a raw folder with files but no marker holds a user's data and is never overwritten.

    Args:
        options: ``params:synthetic_cohort`` (``enabled``, ``raw_dir``, ``preset``, ``seed``, ``presets``).

    Returns:
        The marker document (preset, seed, sizes, time).
    """
    raw_dir = Path(options["raw_dir"])
    if not options["enabled"]:
        raise InputDataError(
            raw_dir,
            "the synthetic cohort generator is disabled in this environment (synthetic_cohort.enabled: false); "
            "run the method on your data with `kedro run --env <env> --pipelines analysis`",
        )
    preset_name = options["preset"]
    if preset_name not in options["presets"]:
        raise InputDataError(
            "parameters synthetic_cohort.preset",
            f"unknown preset {preset_name!r}; choose one of {sorted(options['presets'])}",
        )
    if raw_dir.exists() and not (raw_dir / MARKER_NAME).exists():
        foreign = [p for p in raw_dir.rglob("*") if p.is_file() and p.name not in _IGNORED]
        if foreign:
            raise InputDataError(
                raw_dir,
                f"holds {len(foreign)} file(s) the synthetic generator did not write (e.g. {foreign[0]}) and no "
                f"{MARKER_NAME} marker: refusing to overwrite your data. Point synthetic_cohort.raw_dir and the "
                "catalog elsewhere, or run `--pipelines analysis` on your data",
            )
    cfg = SyntheticConfig.from_dict(options)
    return {
        "generator": "gb_kedro.synthetic.cohort",
        "preset": preset_name,
        "seed": cfg.seed,
        "sizes": cfg.presets[preset_name].to_dict(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def generate_synthetic_cohort(marker: dict) -> dict:
    """Generate every raw file of the cohort described by ``marker`` (see :mod:`gb_kedro.synthetic.cohort`)."""
    preset = Preset.from_dict(marker["sizes"])
    logger.info("Generating the '%s' synthetic cohort (seed %d)", marker["preset"], marker["seed"])
    out = generate(preset, marker["seed"])
    out["tcga_star"] = dict(out["tcga_star"])
    return out


def generate_slides(marker: dict, lineages: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """One slide per mouse, ``mice_per_lineage`` mice per lineage, rendered lazily at save time.

    Returns ``(slides, manifest)``: slide ID -> callable returning the slide's scene (the catalog's
    ``PyramidTiffDataset`` renders and writes it strip by strip), and the slide manifest (``slide_id``,
    ``mouse_id``, ``lineage_id``, ``patient_id``, ``survival_days``, ``path`` relative to the manifest).
    """
    sizes = Preset.from_dict(marker["sizes"])
    manifest, specs = make_mice(
        lineages,
        sizes.mice_per_lineage,
        seed=marker["seed"] + 1,
        width=sizes.slide_width,
        height=sizes.slide_height,
        mpp=sizes.slide_mpp,
    )
    manifest["path"] = "images/" + manifest["slide_id"] + ".tif"
    logger.info("Rendering %d synthetic slides of %dx%d px", len(specs), specs[0].width, specs[0].height)
    bar = tqdm(total=len(specs), desc="Synthetic slides", unit="slide", leave=False)

    def lazy(spec):
        def scene():  # called by the catalog right before it renders and writes this slide
            bar.update()
            if bar.n == bar.total:
                bar.close()
            return make_scene(spec)

        return scene

    slides = {spec.slide_id: lazy(spec) for spec in specs}
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

"""The slide manifest: one row per slide (``slide_id``, ``mouse_id``, ``lineage_id``, ``patient_id``, ``path``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gb_kedro.datasets.table import checked_sheet
from gb_kedro.errors import source_of

MANIFEST_COLUMNS = ["slide_id", "mouse_id", "lineage_id", "patient_id", "path"]


def resolve_slide_manifest(manifest: pd.DataFrame) -> pd.DataFrame:
    """Check the slide manifest and make ``path`` absolute (relative paths are relative to the manifest)."""
    source = source_of(manifest, "slide manifest")
    out = checked_sheet(manifest, MANIFEST_COLUMNS, "slide_id", source)
    base = Path(source).parent if source != "slide manifest" else Path.cwd()
    out["path"] = [str(p if Path(p).is_absolute() else (base / p).resolve()) for p in out["path"]]
    return out


def slide_paths(manifest: pd.DataFrame) -> dict[str, str]:
    """Slide ID -> absolute path."""
    slides = resolve_slide_manifest(manifest)
    return dict(zip(slides["slide_id"], slides["path"], strict=True))

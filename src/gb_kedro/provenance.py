"""Outputs that know how they were made.

:func:`fingerprint` is the one hash of the project: of configs and data, for checkpoints (resumed only for the
same run), per-slide stores (skipped only when made with the same parameters and file), caches and the patch
index a model was trained on.

A table that other stages consume carries ``attrs["provenance"]`` (kept by parquet): the parameters that
made it (e.g. the evaluation split). A model carries the same in ``model.meta`` plus a fingerprint of the
table it was trained on. A stage run alone checks both against the parameters it is given and stops with
one line naming the mismatch, instead of writing a mislabelled result.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from gb_kedro.errors import InputDataError


def fingerprint(*parts) -> str:
    """A short hash of configs and data (arrays by their bytes, everything else as sorted JSON)."""
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def stamp(frame: pd.DataFrame, **made_with: dict) -> pd.DataFrame:
    """Record the parameter trees that made ``frame`` (``stamp(index, split={...})``)."""
    frame.attrs["provenance"] = {**frame.attrs.get("provenance", {}), **made_with}
    return frame


def made_with(frame: pd.DataFrame) -> dict:
    return dict(frame.attrs.get("provenance", {}))


def require(recorded: dict, key: str, expected: dict, what: str, stage: str, remedy: str) -> None:
    """Stop when ``recorded[key]`` (the parameters ``what`` was made with) differs from ``expected``."""
    if key not in recorded:
        raise InputDataError(
            what, f"{stage}: it does not say which {key} parameters made it (made by an older version?): {remedy}"
        )
    made = recorded[key]
    for name in sorted(set(made) | set(expected)):
        if made.get(name) != expected.get(name):
            raise InputDataError(
                what,
                f"{stage}: it was made with {key}.{name}={made.get(name)}, this run asks for "
                f"{key}.{name}={expected.get(name)}: {remedy}",
            )


def index_fingerprint(patch_index: pd.DataFrame) -> str:
    """Content fingerprint of a patch index (which patches, and which of them are held out)."""
    cols = ["slide_id", "x", "y", "split", *(["held_out"] if "held_out" in patch_index else [])]
    return fingerprint(patch_index[cols].astype(str).to_numpy().tolist())


def require_split(frame: pd.DataFrame, split: dict, what: str, stage: str) -> None:
    """``frame`` (patch index, lineage split) was made for the evaluation split this run asks for."""
    require(
        made_with(frame),
        "split",
        split,
        what,
        stage,
        "run data_engineering first (it assigns the split), then this stage",
    )


def require_model(meta: dict, split: dict, patch_index: pd.DataFrame, what: str, stage: str, remedy: str) -> None:
    """A trained model was trained for this split, on this very patch index."""
    require(meta, "split", split, what, stage, remedy)
    if meta.get("patch_index") != index_fingerprint(patch_index):
        raise InputDataError(what, f"{stage}: it was trained on another patch index than the one on disk: {remedy}")


def same_rows(frame: pd.DataFrame, patch_index: pd.DataFrame) -> bool:
    """Whether per-patch ``frame`` holds the patch index's tumour patches (slide, x, y), in its order."""
    key = ["slide_id", "x", "y"]
    return len(frame) == len(patch_index) and frame[key].reset_index(drop=True).equals(
        patch_index[key].reset_index(drop=True)
    )


def require_rows(frame: pd.DataFrame, patch_index: pd.DataFrame, what: str, stage: str) -> None:
    """Per-patch features or embeddings ``frame`` hold the patch index's tumour patches, in its order."""
    if not same_rows(frame, patch_index):
        raise InputDataError(
            what,
            f"{stage}: its rows are not the patch index's {len(patch_index)} tumour patches in order "
            f"({len(frame)} rows): rerun wsi_encoding (or the stage that made it) on this patch index",
        )

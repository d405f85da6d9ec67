"""The generator's marker file: it claims a raw-data folder before writing anything, and refuses a folder
that holds files it did not write (a user's data)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from gb_kedro.errors import InputDataError
from gb_kedro.synthetic.cohort import SyntheticConfig

MARKER_NAME = ".gb_kedro_synthetic.json"
_IGNORED = {".gitkeep", MARKER_NAME, ".DS_Store"}


def claim_raw_directory(cfg: SyntheticConfig) -> dict:
    """Refuse to generate into a raw-data folder that holds files this generator did not write.

    The generator writes ``<raw_dir>/.gb_kedro_synthetic.json`` (this node's output) before anything
    else; a raw folder with files but no marker holds a user's data and is never overwritten.

    Args:
        cfg: ``params:synthetic_cohort`` (``enabled``, ``raw_dir``, ``preset``, ``seed``, ``presets``).

    Returns:
        The marker document (preset, seed, sizes, time).
    """
    raw_dir = Path(cfg.raw_dir)
    if not cfg.enabled:
        raise InputDataError(
            raw_dir,
            "the synthetic cohort generator is disabled in this environment (synthetic_cohort.enabled: false); "
            "run the method on your data with `kedro run --env <env> --pipelines analysis`",
        )
    preset_name = cfg.preset
    if preset_name not in cfg.presets:
        raise InputDataError(
            cfg.SOURCE,
            f"unknown preset {preset_name!r}; choose one of {sorted(cfg.presets)}",
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
    return {
        "generator": "gb_kedro.synthetic.cohort",
        "preset": preset_name,
        "seed": cfg.seed,
        "sizes": cfg.presets[preset_name].to_dict(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

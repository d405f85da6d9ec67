"""Helpers shared by the tests: typed configs built from ``conf/base`` (the one home of every default)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gb_kedro import config

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The runtime parameters of the ``tiny_project`` fixture's default run (a test that reruns a pipeline there passes
# them too, or its fingerprints differ). One permutation-null retraining and one seed retraining (two seeds) keep
# the suite fast. No stain mixing: on tiny's ~10 patches per slide and 2 training mice per lineage, full mixing
# leaves the WSI encoder too little to learn and its embedding shrinks (spread 0.56 -> 0.02 over 40 epochs,
# measured); without it the no-collapse check of the triplet stage is about the training, not a starved encoder.
TINY_RUN_PARAMS = {
    "synthetic_cohort": {"preset": "tiny"},
    "multimodal": {"retrainings": {"permutations": 1, "seeds": 2}},
    "patches": {"augment": {"stain_mix": 0.0}},
    "wsi_encoding": {"train": {"epochs": 40}},  # tiny: 40 epochs are enough
}


def base_parameters() -> dict:
    """Every parameter tree of ``conf/base`` (the one home of the defaults), merged."""
    return config.base_parameters(PROJECT_ROOT / "conf/base")


def base_options(dotted: str, **overrides) -> dict:
    """The parameter tree at ``dotted`` (e.g. ``multimodal``) from ``conf/base``, with top-level overrides."""
    return config.base_subtree(dotted, PROJECT_ROOT / "conf/base", **overrides)


def base_config(cls, dotted: str, **overrides):
    """A typed config built from ``conf/base`` at ``dotted``, with top-level overrides."""
    return cls.from_dict(base_options(dotted, **overrides))


def train_config(**overrides):
    """A :class:`~gb_kedro.training.TrainConfig`: the multimodal schedule of ``conf/base`` with overrides."""
    from gb_kedro.config import TrainSettings
    from gb_kedro.training import TrainConfig

    seed, device = overrides.pop("seed", 0), overrides.pop("device", "auto")
    return TrainConfig.of(TrainSettings.from_dict(base_options("multimodal.train", **overrides)), seed, device)


def copy_project(path: Path) -> Path:
    """A throw-away copy of the Kedro project at ``path`` (pyproject + conf without ``local``, an empty
    ``conf/local`` and ``src``): pipelines run there without touching this checkout's data."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", path / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    (path / "src").mkdir()
    return path


def kedro_cli(project: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``kedro run ...`` as a user types it (not a terminal), in ``project``."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(PROJECT_ROOT / "src")}
    env.pop("KEDRO_ENV", None)
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run(
        [str(kedro), "run", *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )

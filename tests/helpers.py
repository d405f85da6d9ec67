"""Helpers shared by the tests: typed configs built from ``conf/base`` (the one home of every default)."""

from __future__ import annotations

from pathlib import Path

from gb_kedro import config

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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

"""Typed configs of the ``wsi_encoding`` pipeline (``conf/base/parameters_wsi_encoding.yml``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from gb_kedro.config.base import Config, choice, device_name
from gb_kedro.config.shared import SamplerConfig, TrainSettings


class _WSI(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters_wsi_encoding.yml"


@dataclasses.dataclass(frozen=True)
class ViTSettings(_WSI):
    preset: str
    grad_checkpointing: bool

    def __post_init__(self):
        choice(self.preset, ("tiny", "small"), "wsi_encoding.model.preset", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class MorphometryConfig(_WSI):
    """``params:morphometry``: per-patch nuclear morphometry (the baseline row and the distillation target)."""

    KEY: ClassVar[str] = "morphometry"
    min_area: int
    neighbour_radius: float
    tumour_od_difference: float
    smooth_px: float
    n_workers: int


@dataclasses.dataclass(frozen=True)
class TripletConfig(_WSI):
    margin: float
    warmup_epochs: int
    ce_weight: float
    proxy_scale: float
    cross_mouse: bool
    morphometry_weight: float
    mouse_adversary: float


@dataclasses.dataclass(frozen=True)
class WSIEncodingConfig(_WSI):
    KEY: ClassVar[str] = "wsi_encoding"
    model: ViTSettings
    loss: TripletConfig
    sampler: SamplerConfig
    train: TrainSettings
    val_fraction: float
    colour_bins: int
    n_boot: int  # slide-paired bootstrap draws: the encoder minus the strong baseline
    device: str
    seed: int
    checkpoint_dir: str

    def __post_init__(self):
        device_name(self.device, f"{self.KEY}.device", self.SOURCE)


ROOTS = (WSIEncodingConfig, MorphometryConfig)

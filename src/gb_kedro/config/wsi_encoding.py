"""Typed configs of the ``wsi_encoding`` pipeline (``conf/base/parameters_wsi_encoding.yml``)."""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

from gb_kedro.config.base import Config, choice, device_name
from gb_kedro.config.shared import SamplerConfig, TrainSettings
from gb_kedro.errors import InputDataError


class _WSI(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters_wsi_encoding.yml"


@dataclasses.dataclass(frozen=True)
class ViTSettings(_WSI):
    preset: str
    grad_checkpointing: bool
    stem: str

    def __post_init__(self):
        choice(self.preset, ("tiny", "small"), "wsi_encoding.model.preset", self.SOURCE)
        choice(self.stem, ("patchify", "conv"), "wsi_encoding.model.stem", self.SOURCE)


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
    morphometry_targets: list  # the features the auxiliary head regresses ([]: all 40)
    morphometry_within_lineage: bool  # targets less their lineage's mean (what the lineage does not predict)
    mouse_adversary: float
    view_weight: float  # two views of each training patch, NT-Xent between them (0: one view, no such term)
    view_temperature: float
    mim_epochs: int  # masked-image modelling alone for the first epochs (a self-supervised warm start; 0: none)
    mim_weight: float  # that term's weight beside the lineage losses after the warm start (0: warm start only)
    mim_ratio: float  # share of each window's sub-patches hidden
    neighbour_batches: bool  # each batch a random lineage and its nearest lineages by the current proxies
    projector: bool  # the lineage losses act on an MLP of the CLS; the embedding is the CLS before it

    def __post_init__(self):
        if not 0.0 < self.mim_ratio < 1.0:
            raise InputDataError(self.SOURCE, f"wsi_encoding.loss.mim_ratio must lie in (0, 1), not {self.mim_ratio}")


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
        if self.loss.mim_epochs >= self.train.epochs:
            raise InputDataError(
                self.SOURCE,
                f"wsi_encoding.loss.mim_epochs ({self.loss.mim_epochs}) leaves no lineage epoch of train.epochs "
                f"({self.train.epochs}): the warm start counts within them",
            )


# --- patch encoders of the user's own, beside the ViT (gb_kedro.patch_features) -----------------------------
PATCH_FEATURE_SOURCES = ("features", "exported")
FEATURE_LAYOUTS = ("auto", "trident", "clam")


@dataclasses.dataclass(frozen=True)
class FeatureFolderSettings(_WSI):
    """``features``: a TRIDENT (``features_<encoder>/<slide>.h5``) or CLAM (``h5_files/<slide>.h5``) folder."""

    path: str | None
    layout: str
    patch_size_level0: int | None  # the patches' side in level-0 px when the files do not say (CLAM at level > 0)
    coord_tolerance: float  # share of the patch side two sides / top-left corners may differ by and be one patch
    min_matched: float  # share of this project's tumour patches that must have a feature row, else the run stops


@dataclasses.dataclass(frozen=True)
class ExportedModelSettings(_WSI):
    """``exported``: a patch encoder saved with ``torch.export.save`` (``.pt2``; image batch -> [N, D])."""

    path: str | None
    input_px: int
    mean: list
    std: list
    batch_size: int


@dataclasses.dataclass(frozen=True)
class PatchEncoderSettings(_WSI):
    source: str
    features: FeatureFolderSettings
    exported: ExportedModelSettings
    cache_dir: str  # exported: features written here per slide, TRIDENT layout (features_<name>/<slide>.h5)
    device: str

    def check(self, key: str) -> PatchEncoderSettings:
        """The enumerated values checked, errors naming ``key`` (``patch_features.encoders.<name>``)."""
        choice(self.source, PATCH_FEATURE_SOURCES, f"{key}.source", self.SOURCE)
        choice(self.features.layout, FEATURE_LAYOUTS, f"{key}.features.layout", self.SOURCE)
        device_name(self.device, f"{key}.device", self.SOURCE)
        return self


def _merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclasses.dataclass(frozen=True)
class PatchFeaturesConfig(_WSI):
    """``params:patch_features``: ``encoders`` (name -> the settings that differ from ``defaults``); each named
    encoder is a namespace of the wsi_encoding pipeline (read when the pipelines are built)."""

    KEY: ClassVar[str] = "patch_features"
    encoders: dict
    defaults: PatchEncoderSettings

    def __post_init__(self):
        self.defaults.check("patch_features.defaults")
        for name in self.encoders:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
                raise InputDataError(
                    self.SOURCE, f"patch_features.encoders: name {name!r} must be lower-case letters, digits, _"
                )
            settings = self.encoder(name)
            source = getattr(settings, settings.source)
            if not source.path:
                raise InputDataError(
                    self.SOURCE,
                    f"patch_features.encoders.{name}.{settings.source}.path is not set: give it in conf/<env>/ or "
                    f"kedro run --params patch_features.encoders.{name}.{settings.source}.path=<path>",
                )

    def encoder(self, name: str) -> PatchEncoderSettings:
        """The settings of encoder ``name``: ``defaults`` with its own values over them."""
        override = self.encoders[name] or {}
        if not isinstance(override, dict):
            raise InputDataError(self.SOURCE, f"patch_features.encoders.{name} must be a mapping, not {override!r}")
        key = f"patch_features.encoders.{name}"
        return PatchEncoderSettings.from_dict(_merged(self.defaults.to_dict(), override), key=key).check(key)


ROOTS = (WSIEncodingConfig, MorphometryConfig, PatchFeaturesConfig)

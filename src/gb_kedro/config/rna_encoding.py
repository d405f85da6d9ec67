"""Typed configs of the ``rna_encoding`` pipeline (``conf/base/parameters_rna_encoding.yml``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from gb_kedro.config.base import Config, choice, device_name
from gb_kedro.config.shared import TrainSettings
from gb_kedro.errors import InputDataError

# The gene groupings data_engineering makes (gene_groups_<grouping>): PPI communities (eq. 1) and the chromosome ablation.
GROUPINGS = ("ppi", "chromosome")


class _RNA(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters_rna_encoding.yml"


@dataclasses.dataclass(frozen=True)
class RNAModelSettings(_RNA):
    preset: str

    def __post_init__(self):
        choice(self.preset, ("tiny", "base"), "rna_encoding.model.preset", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class RNALossConfig(_RNA):
    temperature: float
    recon_weight: float
    contrastive_weight: float


@dataclasses.dataclass(frozen=True)
class PretrainSettings(TrainSettings):
    val_fraction: float


@dataclasses.dataclass(frozen=True)
class CohortStageSettings(TrainSettings):
    replay_tcga: bool


@dataclasses.dataclass(frozen=True)
class TSNEConfig(_RNA):
    perplexity: float
    seed: int


@dataclasses.dataclass(frozen=True)
class RNAEncodingConfig(_RNA):
    KEY: ClassVar[str] = "rna_encoding"
    model: RNAModelSettings
    loss: RNALossConfig
    tcga_test_fraction: float
    pretrain: PretrainSettings
    cohort: CohortStageSettings
    device: str
    seed: int
    checkpoint_dir: str
    knn_k: int
    embed_batch_size: int
    tsne: TSNEConfig
    groupings: list  # the pipeline's shape: one namespaced encoder per gene grouping (read when pipelines are built)

    def __post_init__(self):
        device_name(self.device, f"{self.KEY}.device", self.SOURCE)
        if not self.groupings:
            raise InputDataError(self.SOURCE, "rna_encoding.groupings is empty: list ppi and/or chromosome")
        for grouping in self.groupings:
            choice(grouping, GROUPINGS, "rna_encoding.groupings", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class RNAVariant(_RNA):
    KEY: ClassVar[str] = "<grouping>.rna_variant"
    name: str


ROOTS = (RNAEncodingConfig,)

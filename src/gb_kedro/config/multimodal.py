"""Typed configs of the ``multimodal`` pipeline (``conf/base/parameters_multimodal.yml``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from gb_kedro.config.base import Config, choice, device_name
from gb_kedro.config.rna_encoding import GROUPINGS
from gb_kedro.config.shared import SamplerConfig, TrainSettings
from gb_kedro.errors import InputDataError


class _MM(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters_multimodal.yml"


@dataclasses.dataclass(frozen=True)
class FusionSettings(_MM):
    embed_dim: int
    fusion_depth: int
    fusion_heads: int
    mlp_ratio: float


@dataclasses.dataclass(frozen=True)
class MultimodalLossConfig(_MM):
    temperature: float
    itc_weight: float
    itm_weight: float
    mask_rna: bool
    gene_dropout: float


@dataclasses.dataclass(frozen=True)
class RetrievalConfig(_MM):
    top_k: int
    n_boot: int
    rna_batch_size: int
    paired_reference: str  # the row every other Table 1 row is compared with, slide-paired (table1_paired)


@dataclasses.dataclass(frozen=True)
class Table1Shape(_MM):
    """``multimodal.table1``: Table 1's trained rows (row -> the RNA grouping it uses; each row's settings in
    ``<row>.table1_row``) and the row whose model the reporting stage reads (Table 2, its seeds and nulls,
    survival). Part of the pipeline's shape: read when the pipelines are built."""

    rows: dict
    model_row: str

    def __post_init__(self):
        if not self.rows:
            raise InputDataError(self.SOURCE, "multimodal.table1.rows is empty")
        for row, grouping in self.rows.items():
            choice(grouping, GROUPINGS, f"multimodal.table1.rows.{row}", self.SOURCE)
        choice(self.model_row, tuple(self.rows), "multimodal.table1.model_row", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class RetrainingsConfig(_MM):
    """``multimodal.retrainings``: the model row trained again. ``seeds``: models in all for Table 2's seed
    stability (seed 0 = the Table 1 model, then ``seeds - 1`` retrainings with ``multimodal.seed + k``);
    ``permutations``: permutation-null retrainings (patches paired with another lineage's RNA). Part of the
    pipeline's shape: one namespace per retraining, built from conf (a run's ``--params`` may ask for fewer)."""

    seeds: int
    permutations: int

    def __post_init__(self):
        if self.seeds < 1 or self.permutations < 0:
            raise InputDataError(
                self.SOURCE,
                f"multimodal.retrainings: seeds must be >= 1 and permutations >= 0 (got {self.seeds}, {self.permutations})",
            )


@dataclasses.dataclass(frozen=True)
class MultimodalConfig(_MM):
    KEY: ClassVar[str] = "multimodal"
    model: FusionSettings
    loss: MultimodalLossConfig
    sampler: SamplerConfig
    train: TrainSettings
    encoder_lr_scale: float  # learning rate of the pretrained encoders relative to train.lr (the rest at 1)
    val_fraction: float
    evaluation: RetrievalConfig
    device: str
    seed: int
    checkpoint_dir: str
    table1: Table1Shape
    retrainings: RetrainingsConfig

    def __post_init__(self):
        device_name(self.device, f"{self.KEY}.device", self.SOURCE)
        if not 0.0 <= self.encoder_lr_scale <= 1.0:
            raise InputDataError(
                self.SOURCE, f"multimodal.encoder_lr_scale must be in [0, 1], not {self.encoder_lr_scale}"
            )


@dataclasses.dataclass(frozen=True)
class Table1Row(_MM):
    """One configuration of Table 1 (``params:<row>.table1_row``)."""

    KEY: ClassVar[str] = "<row>.table1_row"
    name: str
    label: str
    pretrained: bool
    train: bool
    freeze_encoders: bool
    recon_weight: float


@dataclasses.dataclass(frozen=True)
class ColourRow(_MM):
    """The non-deep row of Table 1 (``params:colour_baseline.table1_row``)."""

    KEY: ClassVar[str] = "colour_baseline.table1_row"
    name: str
    label: str
    ridge_log10_alphas: list


@dataclasses.dataclass(frozen=True)
class MorphometryRow(_MM):
    """The pixel-morphometry row of Table 1 (``params:morphometry_baseline.table1_row``)."""

    KEY: ClassVar[str] = "morphometry_baseline.table1_row"
    name: str
    label: str
    ridge_log10_alphas: list


@dataclasses.dataclass(frozen=True)
class ClassifierRow(_MM):
    """The strong baseline row of Table 1 (``params:morphometry_classifier.table1_row``): the richer morphometry
    -> the lineage classifier of ``params:lineage_classifier`` -> that lineage's RNA sample."""

    KEY: ClassVar[str] = "morphometry_classifier.table1_row"
    name: str
    label: str


@dataclasses.dataclass(frozen=True)
class BridgeRow(_MM):
    """The expression-bridge row of Table 1 (``params:expression_bridge.table1_row``): images -> the expression
    of the genes that follow morphology across the training lineages -> the nearest RNA sample in those genes."""

    KEY: ClassVar[str] = "expression_bridge.table1_row"
    name: str
    label: str
    n_genes: list  # candidate numbers of genes; the one kept is chosen on held-out training lineages
    inner_folds: int
    ridge_log10_alphas: list

    def __post_init__(self):
        if not self.n_genes or min(self.n_genes) < 1:
            raise InputDataError(self.SOURCE, f"expression_bridge.table1_row.n_genes must be >= 1: {self.n_genes}")
        if self.inner_folds < 2:
            raise InputDataError(
                self.SOURCE, f"expression_bridge.table1_row.inner_folds must be >= 2: {self.inner_folds}"
            )


@dataclasses.dataclass(frozen=True)
class FeatureAdapterRow(_MM):
    """``params:feature_adapter``: the Table 1 row ``<encoder>_adapter`` of each patch encoder of your own
    (``patch_features.encoders``): its frozen features -> a trainable adapter -> the paper's alignment, fusion,
    matching and decoding with the model row's RNA encoder."""

    KEY: ClassVar[str] = "feature_adapter"
    table1_row: dict  # a Table 1 row without its name (<encoder>_adapter); {encoder} in the label is filled in
    width: int  # the adapter's image token width
    dropout: float

    def __post_init__(self):
        self.row("encoder")

    def row(self, encoder: str) -> Table1Row:
        """The row of patch encoder ``encoder``."""
        tree = {**self.table1_row, "name": f"{encoder}_adapter"}
        if "label" in tree:  # a missing label is named by from_dict
            tree["label"] = str(tree["label"]).format(encoder=encoder)
        return Table1Row.from_dict(tree, key=f"{self.KEY}.table1_row")


ROOTS = (MultimodalConfig, FeatureAdapterRow)
# Table 1's non-deep rows (each its own node; settings in <name>.table1_row)
BASELINE_ROWS = {
    "colour_baseline": ColourRow,
    "morphometry_baseline": MorphometryRow,
    "morphometry_classifier": ClassifierRow,
    "expression_bridge": BridgeRow,
}

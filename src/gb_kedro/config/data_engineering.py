"""Typed configs of the ``data_engineering`` pipeline (``conf/base/parameters_data_engineering.yml``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from gb_kedro.config.base import Config, choice
from gb_kedro.errors import InputDataError


class _DataEngineering(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters_data_engineering.yml"


@dataclasses.dataclass(frozen=True)
class _MatrixRead(_DataEngineering):
    """How an expression matrix file is read (TCGA matrices and the cohort matrix alike)."""

    orientation: str
    gene_column: str | None
    annotation_columns: list | None
    value_scale: str

    def __post_init__(self):
        choice(self.value_scale, ("linear", "log2p1", "log1p"), f"{self.KEY}.value_scale", self.SOURCE)
        choice(self.orientation, ("auto", "genes_x_samples", "samples_x_genes"), f"{self.KEY}.orientation", self.SOURCE)

    @property
    def matrix_options(self) -> dict:
        """:func:`gb_kedro.expression.parse_expression_matrix` options."""
        return {
            "orientation": self.orientation,
            "gene_column": self.gene_column,
            "annotation_columns": self.annotation_columns,
            "value_scale": self.value_scale,
            "scale_key": f"{self.KEY}.value_scale",
        }


@dataclasses.dataclass(frozen=True)
class TcgaConfig(_MatrixRead):
    KEY: ClassVar[str] = "data_engineering.tcga"
    format: str
    value_column: str
    htseq_values: str
    keep_gene_types: list | None
    sample_types: list | None
    project: str | None

    def __post_init__(self):
        super().__post_init__()
        choice(self.format, ("auto", "star_folder", "htseq_folder", "matrix"), f"{self.KEY}.format", self.SOURCE)
        choice(self.htseq_values, ("counts", "fpkm", "fpkm_uq"), f"{self.KEY}.htseq_values", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class CohortReadConfig(_MatrixRead):
    KEY: ClassVar[str] = "data_engineering.cohort"


@dataclasses.dataclass(frozen=True)
class MinimumsConfig(_DataEngineering):
    """Data too small to mean anything is refused (one line naming the file), not trained on."""

    KEY: ClassVar[str] = "data_engineering.minimums"
    tcga_samples: int
    cohort_samples: int
    cohort_lineages: int
    genes: int


@dataclasses.dataclass(frozen=True)
class HarmoniseConfig(_DataEngineering):
    KEY: ClassVar[str] = "data_engineering.harmonise"
    gene_types: list


@dataclasses.dataclass(frozen=True)
class VarianceConfig(_DataEngineering):
    KEY: ClassVar[str] = "data_engineering.variance"
    quantile: float
    min_variance: float


@dataclasses.dataclass(frozen=True)
class PPIConfig(_DataEngineering):
    KEY: ClassVar[str] = "data_engineering.ppi"
    format: str
    directed: bool | None
    complexes: str

    def __post_init__(self):
        choice(self.format, ("auto", "primekg", "edge_list"), f"{self.KEY}.format", self.SOURCE)
        choice(self.complexes, ("expand", "drop"), f"{self.KEY}.complexes", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class GroupingConfig(_DataEngineering):
    KEY: ClassVar[str] = "data_engineering.gene_grouping"
    n_groups: int
    resolution: float
    seed: int
    unconnected: (
        str  # genes without a PPI edge: residual (the left-over group) | coexpression (the best-correlated group)
    )
    max_residual_share: float  # warn when the left-over group holds more than this share of the genes

    def __post_init__(self):
        choice(self.unconnected, ("residual", "coexpression"), f"{self.KEY}.unconnected", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class DaskConfig(_DataEngineering):
    """Where Dask runs the per-slide work: a scheduler ``address`` or, when null, a LocalCluster."""

    KEY: ClassVar[str] = "data_engineering.slides.dask"
    address: str | None
    n_workers: int
    threads_per_worker: int


@dataclasses.dataclass(frozen=True)
class SlideRunConfig(_DataEngineering):
    KEY: ClassVar[str] = "data_engineering.slides"
    executor: str
    n_workers: int
    on_slide_error: str
    dask: DaskConfig

    def __post_init__(self):
        choice(self.executor, ("local", "dask"), f"{self.KEY}.executor", self.SOURCE)
        choice(self.on_slide_error, ("raise", "skip"), f"{self.KEY}.on_slide_error", self.SOURCE)

    @property
    def fanout(self) -> dict:
        """:func:`gb_kedro.slides.fanout.map_slides` options (``executor``, workers, Dask address)."""
        dask = self.executor == "dask"
        return {
            "executor": self.executor,
            "n_workers": self.dask.n_workers if dask else self.n_workers,
            "address": self.dask.address if dask else None,
            "threads_per_worker": self.dask.threads_per_worker if dask else 1,
        }


@dataclasses.dataclass(frozen=True)
class QCConfig(_DataEngineering):
    KEY: ClassVar[str] = "data_engineering.qc"
    max_slides: int | None
    thumbnail_px: int
    weak_brown_min: float


@dataclasses.dataclass(frozen=True)
class TilingOptions(_DataEngineering):
    """Parameters of tumour-patch selection (``params:data_engineering.tiling``; documented there)."""

    KEY: ClassVar[str] = "data_engineering.tiling"
    size: int
    target_mpp: float | None
    mpp_tolerance: float
    threshold: float | str  # a brown ratio, or auto: Otsu's threshold over the cohort's scored patches
    hue_centre: float
    hue_margin: float
    lightness_min: float
    lightness_max: float
    prefilter: str
    prefilter_brown_min: float
    thumbnail_px_per_patch: int
    tissue_max_min_channel: int
    max_region_patches: int
    reader: str
    fallback_mpp: float | None

    def __post_init__(self):
        choice(self.prefilter, ("none", "tissue", "brown"), f"{self.KEY}.prefilter", self.SOURCE)
        choice(self.reader, ("auto", "openslide", "tifffile"), f"{self.KEY}.reader", self.SOURCE)
        if isinstance(self.threshold, str):
            choice(self.threshold, ("auto",), f"{self.KEY}.threshold (a brown ratio in [0, 1], or)", self.SOURCE)
        elif not 0.0 <= self.threshold < 1.0:
            raise InputDataError(self.SOURCE, f"{self.KEY}.threshold must be in [0, 1) or auto, not {self.threshold}")

    @property
    def fixed_threshold(self) -> float | None:
        """The brown-ratio threshold, or None for ``auto`` (set over the cohort once every slide is scored)."""
        return None if self.threshold == "auto" else float(self.threshold)

    @property
    def thresholds(self) -> dict:
        return {
            "hue_centre": self.hue_centre,
            "hue_margin": self.hue_margin,
            "lightness": (self.lightness_min, self.lightness_max),
        }


ROOTS = (
    TcgaConfig,
    CohortReadConfig,
    HarmoniseConfig,
    MinimumsConfig,
    VarianceConfig,
    PPIConfig,
    GroupingConfig,
    TilingOptions,
    SlideRunConfig,
    QCConfig,
)

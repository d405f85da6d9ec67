"""Typed configs: every hyper-parameter is read once from ``conf/base/parameters_<pipeline>.yml`` into a
frozen dataclass.

Defaults live only in ``conf/``: a config class declares fields without defaults, ``from_dict`` fills them
from the parameter tree, recursing into nested config classes, and stops with one line naming the key and
the file when a key is unknown (a typo) or missing. Code reads ``cfg.train.lr``, never
``options.get("lr", 0.001)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from gb_kedro.errors import InputDataError

C = TypeVar("C", bound="Config")


class Config:
    """Base of the typed configs (subclasses are ``@dataclass(frozen=True)``).

    ``SOURCE``: the parameter file the values come from (named in errors). ``KEY``: where the tree sits in
    it (``multimodal``, ``data_engineering.tiling``, ...).
    """

    SOURCE: ClassVar[str] = "conf/base/parameters.yml"
    KEY: ClassVar[str] = ""

    @classmethod
    def from_dict(
        cls: type[C], values: dict | None, key: str | None = None, source: str | None = None, **extra: Any
    ) -> C:
        """Build from a parameter tree; ``extra`` supplies fields that the stage fills in (e.g. ``seed``)."""
        key = cls.KEY if key is None else key
        source = source or cls.SOURCE
        values = {**dict(values or {}), **extra}
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise InputDataError(
                source, f"unknown parameter {_join(key, unknown[0])!r} (allowed: {', '.join(sorted(fields))})"
            )
        missing = sorted(set(fields) - set(values))
        if missing:
            raise InputDataError(source, f"missing parameter {_join(key, missing[0])!r}")
        hints = typing.get_type_hints(cls)
        kwargs = {name: _convert(hints[name], values[name], _join(key, name), source) for name in fields}
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    """Nested configs are built recursively; ``dict[str, <Config>]`` maps of them too; other values as given."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        hint = options[0] if len(options) == 1 else hint
        origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, Config):
        if not isinstance(value, dict):
            raise InputDataError(source, f"parameter {key!r} must be a mapping, not {value!r}")
        return hint.from_dict(value, key=key, source=source)
    if origin is dict:
        _, value_hint = typing.get_args(hint)
        if isinstance(value_hint, type) and issubclass(value_hint, Config):
            return {k: value_hint.from_dict(v, key=f"{key}.{k}", source=source) for k, v in dict(value).items()}
    return value


def device_name(value: str, key: str, source: str) -> str:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:<index>``."""
    if value not in ("auto", "cpu", "cuda") and not (value.startswith("cuda:") and value[5:].isdigit()):
        raise InputDataError(source, f"parameter {key!r} is {value!r}; allowed: auto, cpu, cuda, cuda:<index>")
    return value


def choice(value: str, allowed: tuple[str, ...], key: str, source: str) -> str:
    """An enumerated parameter, checked: one line listing the allowed values otherwise."""
    if value not in allowed:
        raise InputDataError(source, f"parameter {key!r} is {value!r}; allowed: {', '.join(allowed)}")
    return value


# --- shared ----------------------------------------------------------------------------------------
SPLIT_MODES = ("all", "patch", "mouse", "lineage")
# The held-out sets of a split (the ``held_out`` column of the patch index), in Table 1's order.
HELD_OUT_SETS = ("patch", "mouse", "lineage")


@dataclasses.dataclass(frozen=True)
class SplitConfig(Config):
    """``params:split`` (parameters.yml): the evaluation split, applied end to end."""

    SOURCE: ClassVar[str] = "conf/base/parameters.yml"
    KEY: ClassVar[str] = "split"
    mode: str
    test_fraction: float
    test_mice_per_lineage: int
    n_test_lineages: int | None
    min_test_lineages: int
    min_train_lineages: int
    seed: int

    def __post_init__(self):
        choice(self.mode, SPLIT_MODES, "split.mode", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class SamplerConfig(Config):
    """Batches of ``p`` lineages x ``k`` patches."""

    p: int
    k: int


@dataclasses.dataclass(frozen=True)
class DistributedSettings(Config):
    """Data-parallel training on one machine: ``world_size`` processes (``torch.multiprocessing``), ``backend``
    ``auto`` (nccl on CUDA, gloo on CPU), ``gloo`` or ``nccl``. ``world_size: 1`` = one process (no group)."""

    world_size: int
    backend: str

    def __post_init__(self):
        choice(self.backend, ("auto", "gloo", "nccl"), "<stage>.train.distributed.backend", self.SOURCE)
        if self.world_size < 1:
            raise InputDataError(self.SOURCE, f"distributed.world_size must be >= 1, not {self.world_size}")


@dataclasses.dataclass(frozen=True)
class TrainSettings(Config):
    """The optimiser schedule of one training stage (read into :class:`gb_kedro.training.TrainConfig`)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float
    min_lr_ratio: float
    grad_clip: float
    patience: int  # epochs without validation improvement before stopping (0 = never stop)
    keep: str  # the weights the stage returns: best (lowest validation loss) | last (the final epoch's)
    num_workers: int
    distributed: DistributedSettings

    def __post_init__(self):
        choice(self.keep, ("best", "last"), "<stage>.train.keep", self.SOURCE)


# --- data_engineering ------------------------------------------------------------------------------
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


# --- rna_encoding ----------------------------------------------------------------------------------
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

    def __post_init__(self):
        device_name(self.device, f"{self.KEY}.device", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class RNAVariant(_RNA):
    KEY: ClassVar[str] = "<grouping>.rna_variant"
    name: str


# --- wsi_encoding ----------------------------------------------------------------------------------
class _WSI(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters_wsi_encoding.yml"


@dataclasses.dataclass(frozen=True)
class ViTSettings(_WSI):
    preset: str
    grad_checkpointing: bool

    def __post_init__(self):
        choice(self.preset, ("tiny", "small"), "wsi_encoding.model.preset", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class PatchDataConfig(_WSI):
    mode: str
    patch_px: int
    read_px: int
    cache: str
    num_workers: int
    decode_batch_size: int
    inference_batch_size: int
    executor: str
    test_views: str

    def __post_init__(self):
        choice(self.mode, ("crop", "downsample"), "wsi_encoding.data.mode", self.SOURCE)
        choice(self.test_views, ("none", "dihedral"), "wsi_encoding.data.test_views", self.SOURCE)
        choice(self.executor, ("local", "dask"), "wsi_encoding.data.executor", self.SOURCE)
        choice(self.cache, ("disk", "ram"), "wsi_encoding.data.cache", self.SOURCE)

    @property
    def geometry(self) -> tuple[int, int | None]:
        """(pixels read per patch, crop fed to the model or None). ``downsample``: the patch resized to
        ``patch_px``; ``crop``: read at ``read_px``, windows of ``patch_px`` fed to the model."""
        return (self.read_px, self.patch_px) if self.mode == "crop" else (self.patch_px, None)


@dataclasses.dataclass(frozen=True)
class AugmentConfig(_WSI):
    flips: bool
    hed_sigma: float
    hed_bias: float
    stain_mix: float


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
    data: PatchDataConfig
    augment: AugmentConfig
    loss: TripletConfig
    sampler: SamplerConfig
    train: TrainSettings
    val_fraction: float
    colour_bins: int
    device: str
    seed: int
    checkpoint_dir: str

    def __post_init__(self):
        device_name(self.device, f"{self.KEY}.device", self.SOURCE)


# --- multimodal ------------------------------------------------------------------------------------
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
    image_batch_size: int
    rna_batch_size: int


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
    histogram_bins: int
    ridge_log10_alphas: list


@dataclasses.dataclass(frozen=True)
class MorphometryRow(_MM):
    """The pixel-morphometry row of Table 1 (``params:morphometry_baseline.table1_row``)."""

    KEY: ClassVar[str] = "morphometry_baseline.table1_row"
    name: str
    label: str
    ridge_log10_alphas: list


# --- reporting -------------------------------------------------------------------------------------
class _Reporting(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters_reporting.yml"


@dataclasses.dataclass(frozen=True)
class EnrichmentConfig(_Reporting):
    gmt_paths: list | None
    top_n: int
    min_set_size: int
    alpha: float


@dataclasses.dataclass(frozen=True)
class SurvivalConfig(_Reporting):
    n_clusters: int
    kmeans_n_init: int


# Image representations of a lineage for the morphology-link table (``+`` = standardised blocks concatenated).
LINK_REPRESENTATIONS = ("wsi", "morphometry", "wsi+morphometry")
CV_UNITS = ("lineage", "patient")


@dataclasses.dataclass(frozen=True)
class MorphologyLinkConfig(_Reporting):
    representations: list
    rank_by: str
    cv_unit: str
    n_components: int | None
    alphas: list
    n_permutations: int
    min_lineages: int

    def __post_init__(self):
        for kind in self.representations:
            choice(kind, LINK_REPRESENTATIONS, "reporting.morphology_link.representations", self.SOURCE)
        choice(self.rank_by, tuple(self.representations), "reporting.morphology_link.rank_by", self.SOURCE)
        choice(self.cv_unit, CV_UNITS, "reporting.morphology_link.cv_unit", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class GeneScoringConfig(_Reporting):
    wide_top: int
    n_permutations: int


@dataclasses.dataclass(frozen=True)
class AxisProbeConfig(_Reporting):
    inverse_penalty: float
    cv_unit: str

    def __post_init__(self):
        choice(self.cv_unit, CV_UNITS, "reporting.axis_probe.cv_unit", self.SOURCE)


@dataclasses.dataclass(frozen=True)
class ReportingConfig(_Reporting):
    KEY: ClassVar[str] = "reporting"
    top_k_per_patch: int
    gradcam_layer: int
    gene_baseline: str
    gradcam_batch_size: int
    table_size: int
    n_permutations: int
    n_seeds: int
    seed: int
    morphology_link: MorphologyLinkConfig
    scoring: GeneScoringConfig
    axis_probe: AxisProbeConfig
    enrichment: EnrichmentConfig
    survival: SurvivalConfig
    report_qc_slides: int

    def __post_init__(self):
        choice(self.gene_baseline, ("cohort_mean", "zero"), "reporting.gene_baseline", self.SOURCE)


def base_parameters(conf_dir: str | Path = "conf/base") -> dict:
    """Every parameter tree of ``conf/base`` merged (for benchmarks and scripts run outside Kedro)."""
    params: dict = {}
    for path in sorted(Path(conf_dir).glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()) or {})
    return params


def base_subtree(dotted: str, conf_dir: str | Path = "conf/base", **overrides) -> dict:
    """The tree at ``dotted`` (``data_engineering.tiling``) of :func:`base_parameters`, with top-level overrides."""
    tree = base_parameters(conf_dir)
    for part in dotted.split("."):
        tree = tree[part]
    return {**tree, **overrides}

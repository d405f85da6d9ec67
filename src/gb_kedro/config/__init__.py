"""Typed configs: every hyper-parameter is read once from ``conf/base/parameters*.yml`` into a frozen dataclass.

One module per pipeline (:mod:`.data_engineering`, :mod:`.rna_encoding`, :mod:`.wsi_encoding`, :mod:`.multimodal`,
:mod:`.reporting`) plus :mod:`.shared` (``split``, ``patches``: entries several pipelines read, and the ``train``
settings of every stage); each lists its ``ROOTS``, the configs read from a parameter tree of their own, from
which :func:`check_parameters` (run before the first node) is derived. :class:`PipelineShape`: the part of the
parameters that decides the pipelines' nodes (Table 1 rows, RNA groupings, retraining namespaces).
"""

from __future__ import annotations

import dataclasses

from gb_kedro.config.base import Config, base_parameters, base_subtree, choice, device_name
from gb_kedro.config.data_engineering import ROOTS as _DE
from gb_kedro.config.data_engineering import (
    CohortReadConfig,
    DaskConfig,
    GroupingConfig,
    HarmoniseConfig,
    MinimumsConfig,
    PPIConfig,
    QCConfig,
    SlideRunConfig,
    TcgaConfig,
    TilingOptions,
    VarianceConfig,
)
from gb_kedro.config.multimodal import (
    BASELINE_ROWS,
    BridgeRow,
    ClassifierRow,
    ColourRow,
    FeatureAdapterRow,
    FusionSettings,
    MorphometryRow,
    MultimodalConfig,
    MultimodalLossConfig,
    RetrainingsConfig,
    RetrievalConfig,
    Table1Row,
    Table1Shape,
)
from gb_kedro.config.multimodal import ROOTS as _MM
from gb_kedro.config.reporting import (
    CV_UNITS,
    LINK_REPRESENTATIONS,
    AxisProbeConfig,
    EnrichmentConfig,
    GeneScoringConfig,
    ImageAxisProbeConfig,
    MorphologyLinkConfig,
    ReportingConfig,
    SurvivalConfig,
)
from gb_kedro.config.reporting import ROOTS as _REP
from gb_kedro.config.rna_encoding import (
    GROUPINGS,
    CohortStageSettings,
    PretrainSettings,
    RNAEncodingConfig,
    RNALossConfig,
    RNAModelSettings,
    RNAVariant,
    TSNEConfig,
)
from gb_kedro.config.rna_encoding import ROOTS as _RNA
from gb_kedro.config.shared import (
    HELD_OUT_SETS,
    SPLIT_MODES,
    AugmentConfig,
    DecodeConfig,
    DistributedSettings,
    LineageClassifierConfig,
    PatchesConfig,
    SamplerConfig,
    SplitConfig,
    TrainSettings,
)
from gb_kedro.config.shared import ROOTS as _SHARED
from gb_kedro.config.wsi_encoding import (
    FEATURE_LAYOUTS,
    PATCH_FEATURE_SOURCES,
    ExportedModelSettings,
    FeatureFolderSettings,
    MorphometryConfig,
    PatchEncoderSettings,
    PatchFeaturesConfig,
    TripletConfig,
    ViTSettings,
    WSIEncodingConfig,
)
from gb_kedro.config.wsi_encoding import ROOTS as _WSI
from gb_kedro.errors import InputDataError

# Every config read from a parameter tree of its own (KEY), pipeline by pipeline: what check_parameters builds.
ROOTS: tuple[type[Config], ...] = (*_SHARED, *_DE, *_RNA, *_WSI, *_MM, *_REP)


def _tree(parameters: dict, dotted: str):
    tree = parameters
    for part in dotted.split("."):
        tree = (tree or {}).get(part)
    return tree


@dataclasses.dataclass(frozen=True)
class PipelineShape:
    """What decides the pipelines' nodes and namespaces: the RNA groupings (one encoder namespace each), Table 1's
    rows (row -> grouping) and model row, and the number of seed and permutation-null retrainings (one namespace
    each). Read from conf when the pipelines are built (:func:`gb_kedro.pipeline_registry.pipeline_shape`)."""

    groupings: tuple[str, ...]
    rows: dict
    model_row: str
    seeds: int
    permutations: int
    patch_encoders: tuple[str, ...] = ()  # patch_features.encoders: one wsi_encoding namespace each

    @classmethod
    def of(cls, parameters: dict) -> PipelineShape:
        rna, mm = parameters.get("rna_encoding") or {}, parameters.get("multimodal") or {}
        source = RNAEncodingConfig.SOURCE
        groupings = rna.get("groupings")
        if not groupings:
            raise InputDataError(source, "missing parameter 'rna_encoding.groupings' (the RNA encoders to train)")
        for grouping in groupings:
            choice(grouping, GROUPINGS, "rna_encoding.groupings", source)
        table1 = Table1Shape.from_dict(mm.get("table1"), key="multimodal.table1")
        retrainings = RetrainingsConfig.from_dict(mm.get("retrainings"), key="multimodal.retrainings")
        for row, grouping in table1.rows.items():
            if grouping not in groupings:
                raise InputDataError(
                    Table1Shape.SOURCE,
                    f"Table 1 row {row!r} uses the {grouping} RNA encoder, which rna_encoding.groupings does not train",
                )
        encoders = ((parameters.get("patch_features") or {}).get("encoders")) or {}
        return cls(
            tuple(groupings),
            dict(table1.rows),
            table1.model_row,
            retrainings.seeds,
            retrainings.permutations,
            tuple(sorted(encoders)),
        )

    def require_within(self, built: PipelineShape) -> None:
        """A run's parameters may ask for fewer retrainings than the pipelines were built with, nothing else."""
        for name in ("groupings", "rows", "model_row", "patch_encoders"):
            if getattr(self, name) != getattr(built, name):
                raise InputDataError(
                    PatchFeaturesConfig.SOURCE if name == "patch_encoders" else "conf/base/parameters_multimodal.yml",
                    f"this run's parameters change the pipeline's shape ({name}: {getattr(self, name)} instead of "
                    f"{getattr(built, name)}): set it in conf/<env>/ (read when the pipelines are built), not with --params",
                )
        for name in ("seeds", "permutations"):
            if getattr(self, name) > getattr(built, name):
                raise InputDataError(
                    "conf/base/parameters_multimodal.yml",
                    f"multimodal.retrainings.{name} is {getattr(self, name)}, more than the {getattr(built, name)} the "
                    f"pipelines were built with: set it in conf/local/parameters_multimodal.yml (read when the "
                    "pipelines are built); --params can only ask for fewer",
                )


def check_parameters(parameters: dict, shape: PipelineShape | None = None) -> PipelineShape:
    """Build every typed config from the run's parameters: an unknown, missing or invalid value stops the run
    with one line naming the key, the file and, for enumerations, the allowed values. ``shape``: the shape the
    pipelines were built with (the run's must fit in it). Returns the run's shape."""
    for cls in ROOTS:
        tree = _tree(parameters, cls.KEY)
        if tree is not None:
            cls.from_dict(tree)
    run_shape = PipelineShape.of(parameters)
    if shape is not None:
        run_shape.require_within(shape)
    for grouping in run_shape.groupings:
        RNAVariant.from_dict(_tree(parameters, f"{grouping}.rna_variant"), key=f"{grouping}.rna_variant")
    for row in run_shape.rows:
        Table1Row.from_dict(_tree(parameters, f"{row}.table1_row"), key=f"{row}.table1_row")
    for row, cls in BASELINE_ROWS.items():
        cls.from_dict(_tree(parameters, f"{row}.table1_row"), key=f"{row}.table1_row")
    reference = _tree(parameters, "multimodal.evaluation.paired_reference")
    if reference is not None:
        choice(
            reference,
            (*run_shape.rows, *BASELINE_ROWS),
            "multimodal.evaluation.paired_reference",
            MultimodalConfig.SOURCE,
        )
    return run_shape


__all__ = [
    "BASELINE_ROWS",
    "ROOTS",
    "CV_UNITS",
    "GROUPINGS",
    "HELD_OUT_SETS",
    "LINK_REPRESENTATIONS",
    "SPLIT_MODES",
    "AugmentConfig",
    "AxisProbeConfig",
    "BridgeRow",
    "ClassifierRow",
    "CohortReadConfig",
    "CohortStageSettings",
    "ColourRow",
    "Config",
    "DaskConfig",
    "DecodeConfig",
    "DistributedSettings",
    "EnrichmentConfig",
    "ExportedModelSettings",
    "FeatureAdapterRow",
    "FEATURE_LAYOUTS",
    "FeatureFolderSettings",
    "FusionSettings",
    "GeneScoringConfig",
    "GroupingConfig",
    "HarmoniseConfig",
    "ImageAxisProbeConfig",
    "LineageClassifierConfig",
    "MinimumsConfig",
    "MorphologyLinkConfig",
    "MorphometryConfig",
    "MorphometryRow",
    "MultimodalConfig",
    "MultimodalLossConfig",
    "PPIConfig",
    "PATCH_FEATURE_SOURCES",
    "PatchEncoderSettings",
    "PatchFeaturesConfig",
    "PatchesConfig",
    "PipelineShape",
    "PretrainSettings",
    "QCConfig",
    "RNAEncodingConfig",
    "RNALossConfig",
    "RNAModelSettings",
    "RNAVariant",
    "ReportingConfig",
    "RetrainingsConfig",
    "RetrievalConfig",
    "SamplerConfig",
    "SlideRunConfig",
    "SplitConfig",
    "SurvivalConfig",
    "TSNEConfig",
    "Table1Row",
    "Table1Shape",
    "TcgaConfig",
    "TilingOptions",
    "TrainSettings",
    "TripletConfig",
    "VarianceConfig",
    "ViTSettings",
    "WSIEncodingConfig",
    "base_parameters",
    "base_subtree",
    "check_parameters",
    "choice",
    "device_name",
]

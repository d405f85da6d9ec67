"""Typed configs of the ``reporting`` pipeline (``conf/base/parameters_reporting.yml``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from gb_kedro.config.base import Config, choice


class _Reporting(Config):
    SOURCE: ClassVar[str] = "conf/base/parameters_reporting.yml"


@dataclasses.dataclass(frozen=True)
class EnrichmentConfig(_Reporting):
    gmt_paths: list | str | None  # a list, or one string of paths separated by ";" (what --params can carry)
    top_n: int
    min_set_size: int
    alpha: float

    @property
    def paths(self) -> list[str]:
        """The GMT files: ``gmt_paths`` as a list, or split on ``;`` (``--params reporting.enrichment.gmt_paths=a.gmt;b.gmt``:
        Kedro's ``--params`` splits on commas, so a list cannot travel there)."""
        if isinstance(self.gmt_paths, str):
            return [p.strip() for p in self.gmt_paths.split(";") if p.strip()]
        return [str(p) for p in self.gmt_paths or []]


@dataclasses.dataclass(frozen=True)
class SurvivalConfig(_Reporting):
    n_clusters: int
    kmeans_n_init: int
    n_permutations: int  # permutations of the lineage-level log-rank test (the lineage is the unit, not the mouse)


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
class ImageAxisProbeConfig(_Reporting):
    """``reporting.image_axis_probe``: the per-axis linear probe of every image representation."""

    inverse_penalty: float
    max_iter: int
    n_boot: int


@dataclasses.dataclass(frozen=True)
class ReportingConfig(_Reporting):
    KEY: ClassVar[str] = "reporting"
    top_k_per_patch: int
    gradcam_layer: int
    gene_baseline: str
    gradcam_batch_size: int
    table_size: int
    seed: int
    morphology_link: MorphologyLinkConfig
    scoring: GeneScoringConfig
    axis_probe: AxisProbeConfig
    image_axis_probe: ImageAxisProbeConfig
    enrichment: EnrichmentConfig
    survival: SurvivalConfig
    report_qc_slides: int

    def __post_init__(self):
        choice(self.gene_baseline, ("cohort_mean", "zero"), "reporting.gene_baseline", self.SOURCE)


ROOTS = (ReportingConfig,)

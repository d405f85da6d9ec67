"""Project hooks: bad input stops a run with one line, before anything runs when it can be known."""

from __future__ import annotations

import logging

from kedro.framework.hooks import hook_impl

from gb_kedro import logs
from gb_kedro.config import (
    CohortReadConfig,
    ColourRow,
    GroupingConfig,
    HarmoniseConfig,
    MinimumsConfig,
    MorphometryConfig,
    MorphometryRow,
    MultimodalConfig,
    PPIConfig,
    QCConfig,
    ReportingConfig,
    RNAEncodingConfig,
    RNAVariant,
    SlideRunConfig,
    SplitConfig,
    Table1Row,
    TcgaConfig,
    VarianceConfig,
    WSIEncodingConfig,
)
from gb_kedro.errors import InputDataError, find_input_error
from gb_kedro.multimodal import TABLE1_ROWS
from gb_kedro.slides.tiling import TilingOptions

logger = logging.getLogger(__name__)

# Every parameter tree of conf/base read by the method -> its typed config(s), checked before the first node.
CONFIGS = {
    "split": [(SplitConfig, ())],
    "data_engineering": [
        (TcgaConfig, ("tcga",)),
        (CohortReadConfig, ("cohort",)),
        (HarmoniseConfig, ("harmonise",)),
        (MinimumsConfig, ("minimums",)),
        (VarianceConfig, ("variance",)),
        (PPIConfig, ("ppi",)),
        (GroupingConfig, ("gene_grouping",)),
        (TilingOptions, ("tiling",)),
        (SlideRunConfig, ("slides",)),
        (QCConfig, ("qc",)),
    ],
    "rna_encoding": [(RNAEncodingConfig, ())],
    "wsi_encoding": [(WSIEncodingConfig, ())],
    "multimodal": [(MultimodalConfig, ())],
    **{row: [(Table1Row, ("table1_row",))] for row in TABLE1_ROWS},
    "colour_baseline": [(ColourRow, ("table1_row",))],
    "morphometry_baseline": [(MorphometryRow, ("table1_row",))],
    "morphometry": [(MorphometryConfig, ())],
    "reporting": [(ReportingConfig, ())],
    "ppi": [(RNAVariant, ("rna_variant",))],
    "chromosome": [(RNAVariant, ("rna_variant",))],
}  # synthetic_cohort is checked by the generator's own first node (nothing else may import the generator)


def check_parameters(parameters: dict) -> None:
    """Build every typed config from the run's parameters: an unknown, missing or invalid value stops the run
    with one line naming the key, the file and, for enumerations, the allowed values."""
    for top, configs in CONFIGS.items():
        for cls, path in configs:
            tree = parameters.get(top)
            for part in path:
                tree = (tree or {}).get(part)
            if tree is not None:
                cls.from_dict(tree)


def _location(dataset) -> str:
    described = dataset._describe() if hasattr(dataset, "_describe") else {}
    return str(described.get("filepath") or described.get("path") or dataset)


def check_raw_inputs(pipeline, catalog) -> None:
    """Every file or folder the pipeline reads without making it must be there (and a folder of partitions
    must hold one): one line naming it, before any node runs."""
    from kedro.io import MemoryDataset
    from kedro_datasets.partitions import PartitionedDataset

    for name in sorted(pipeline.inputs()):
        if name.startswith("params:") or name == "parameters":
            continue
        dataset = catalog.get(name)
        if dataset is None or isinstance(dataset, MemoryDataset) or getattr(dataset, "_missing_ok", False):
            continue
        if isinstance(dataset, PartitionedDataset):
            try:
                partitions = dataset._list_partitions()
            except (FileNotFoundError, OSError):
                partitions = []
            if not partitions:
                raise InputDataError(
                    _location(dataset),
                    f"no file ending in {dataset._filename_suffix or '(any)'} in this folder "
                    f"(catalog entry {name!r}; on real data pass --params real_data_dir=/path/to/your/data)",
                )
        elif hasattr(dataset, "check_input"):
            dataset.check_input()  # e.g. a TCGA download folder that holds no expression file
        elif not dataset.exists():
            raise InputDataError(
                _location(dataset),
                f"not found (catalog entry {name!r}, read by this pipeline; on real data pass "
                "--params real_data_dir=/path/to/your/data, or run the pipeline that makes it first)",
            )


class QuietLogsHooks:
    """Readable logs for every session (see :mod:`gb_kedro.logs`)."""

    @hook_impl
    def after_context_created(self, context) -> None:
        logs.configure()


class InputChecksHooks:
    """Parameters and raw inputs checked before the first node (one line instead of a traceback later)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        parameters = catalog.load("parameters")
        check_parameters(parameters)
        check_raw_inputs(pipeline, catalog)
        name_parent_run(run_params, parameters)


def name_parent_run(run_params: dict, parameters: dict) -> None:
    """The run kedro-mlflow opened is named after the pipeline(s), the preset (embedded cohort) and the split."""
    import mlflow

    if mlflow.active_run() is None:
        return
    pipelines = ",".join(run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"])
    cohort = parameters.get("synthetic_cohort", {})
    data = f"preset {cohort.get('preset')}" if cohort.get("enabled") else "your data"
    split = parameters.get("split", {}).get("mode")
    mlflow.set_tag("mlflow.runName", f"{pipelines} | {data} | split {split}")


class CleanInputErrorHooks:
    """A failing node, said once: bad input is printed by the command line as its one-line error (nothing
    here); any other error is logged with the node's name here (Kedro's own line is filtered, see
    :mod:`gb_kedro.logs`) and its traceback follows."""

    @hook_impl
    def on_node_error(self, error: Exception, node, catalog, inputs, is_async, run_id):  # noqa: D401
        if find_input_error(error) is None:
            logger.error("Node '%s' failed: %s", node.name, error)

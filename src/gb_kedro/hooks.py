"""Project hooks: bad input stops a run with one line, before anything runs when it can be known."""

from __future__ import annotations

import logging

from kedro.framework.hooks import hook_impl

from gb_kedro import logs, profiling
from gb_kedro.config import check_parameters
from gb_kedro.errors import InputDataError, find_input_error

logger = logging.getLogger(__name__)


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
    """Parameters and raw inputs checked before the first node (one line instead of a traceback later); the
    run that kedro-mlflow opened named, described and tagged; the last line of a run says where its results are."""

    def __init__(self):
        self._run_id: str | None = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        from gb_kedro.pipeline_registry import pipeline_shape

        parameters = catalog.load("parameters")
        check_parameters(parameters, pipeline_shape())  # every typed config; the run fits the pipelines' shape
        check_raw_inputs(pipeline, catalog)
        self._run_id = describe_parent_run(run_params, parameters)

    @hook_impl
    def after_pipeline_run(self, run_params: dict, run_result: dict, pipeline, catalog) -> None:
        where = []
        if "report" in pipeline.all_outputs():
            where.append(f"the report is {_location(catalog.get('report'))}")
        if self._run_id:
            where.append(
                f"MLflow run {self._run_id} (mlflow ui --backend-store-uri sqlite:///mlflow.db; click Model training)"
            )
        if where:
            logger.info("Done: %s", "; ".join(where))


def describe_parent_run(run_params: dict, parameters: dict) -> str | None:
    """The run kedro-mlflow opened: named after the pipeline(s), the preset (embedded cohort) and the split,
    described, tagged with the commit and with the runner's class name (not an object's repr). Its ID."""
    import mlflow

    from gb_kedro.tracking import git_commit

    if mlflow.active_run() is None:
        return None
    pipelines = ",".join(run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"])
    cohort = parameters.get("synthetic_cohort", {})
    data = f"preset {cohort.get('preset')}" if cohort.get("enabled") else "your data"
    split = parameters.get("split", {}).get("mode")
    runner = str(run_params.get("runner") or "")
    mlflow.set_tags(
        {
            "mlflow.runName": f"{pipelines} | {data} | split {split}",
            "mlflow.note.content": (
                f"gb-kedro `kedro run` of the pipeline(s) {pipelines} on "
                f"{'the embedded synthetic cohort, ' + data if cohort.get('enabled') else 'your data'}, evaluation "
                f"split {split}. Nested runs: one per trained model (RNA encoders, WSI encoder, Table 1 rows, "
                "retrainings); this run holds the headline metrics, the tables and the report."
            ),
            "commit": git_commit(),
            **({"runner": runner.split(" object at ")[0].lstrip("<").rsplit(".", 1)[-1]} if runner else {}),
        }
    )
    return mlflow.active_run().info.run_id


class CleanInputErrorHooks:
    """A failing node, said once: bad input is printed by the command line as its one-line error (nothing
    here); any other error is logged with the node's name here (Kedro's own line is filtered, see
    :mod:`gb_kedro.logs`) and its traceback follows."""

    @hook_impl
    def on_node_error(self, error: Exception, node, catalog, inputs, is_async, run_id):  # noqa: D401
        if find_input_error(error) is None:
            logger.error("Node '%s' failed: %s", node.name, error)


class ProfileHooks:
    """The run's time profile (:mod:`gb_kedro.profiling`): each node's wall time (saving its outputs included),
    epochs and throughput; written at the end to the catalog entry ``timings`` (``timings_partial`` for a run of part
    of the pipelines: node names, from / to nodes, tags ...) and logged to the MLflow parent run (``time/<node>``
    metrics and the JSON), also when the run fails (the nodes done so far)."""

    def __init__(self):
        self._run_id: str | None = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        import mlflow

        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        profiling.begin(",".join(names), profiling.selection_of(run_params))
        self._run_id = mlflow.active_run().info.run_id if mlflow.active_run() is not None else None

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        if profiling.current() is not None:
            profiling.current().start(node.name)

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        if profiling.current() is not None:
            profiling.current().stop(node.name, outputs)

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data, node) -> None:
        if profiling.current() is not None:
            profiling.current().saving(node.name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data, node) -> None:
        if profiling.current() is not None:
            profiling.current().saved(node.name)

    @hook_impl
    def on_node_error(self, error, node, catalog, inputs, is_async, run_id) -> None:
        if profiling.current() is not None:
            profiling.current().stop(node.name)

    @hook_impl
    def after_pipeline_run(self, run_params: dict, run_result: dict, pipeline, catalog) -> None:
        self._write(catalog)

    @hook_impl
    def on_pipeline_error(self, error, run_params: dict, pipeline, catalog) -> None:
        self._write(catalog)

    def _write(self, catalog) -> None:
        profile = profiling.current()
        if profile is None or not profile.nodes:
            return
        document = profile.to_dict()
        entry = "timings_partial" if profile.selection else "timings"  # a partial run keeps the whole run's profile
        if entry in catalog:
            catalog.save(entry, document)
        if self._run_id:  # the parent run is closed by now (kedro-mlflow ends it first): log through the client
            from mlflow import MlflowClient

            client = MlflowClient()
            client.log_dict(self._run_id, document, "timings.json")
            for node in profile.nodes:
                client.log_metric(self._run_id, f"time/{node.node}", node.seconds)
            client.log_metric(self._run_id, "time/run", document["wall_seconds"])
        slowest = profile.table().head(3)
        logger.info(
            "Time profile: %.0f s in %d nodes; longest %s",
            document["node_seconds"],
            len(profile.nodes),
            ", ".join(f"{r.node} {r.seconds:.0f} s" for r in slowest.itertuples()),
        )

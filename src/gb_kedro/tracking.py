"""MLflow helpers: kedro-mlflow opens ONE run per ``kedro run``; each trained variant gets a nested run."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator

import numpy as np

logger = logging.getLogger(__name__)


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested dict -> ``{"a.b": "value"}`` with values cut to MLflow's 250 characters."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:250]
    return out


@contextlib.contextmanager
def nested_run(name: str, params: dict | None = None, run_id: str | None = None) -> Iterator[object | None]:
    """A nested MLflow run under the active (kedro-mlflow) run, or ``run_id`` reopened; yields None and
    tracks nothing when no run is active (a node called outside ``kedro run``)."""
    import mlflow

    if mlflow.active_run() is None:
        logger.info("No active MLflow run: '%s' is not tracked", name)
        yield None
        return
    kwargs = {"run_id": run_id} if run_id else {"run_name": name}
    with mlflow.start_run(nested=True, **kwargs) as run:
        if params:
            mlflow.log_params(flatten(params))
        yield run


def log_metrics(run, metrics: dict, step: int | None = None) -> None:
    """Log numeric metrics to ``run`` (no-op when ``run`` is None); names keep MLflow's allowed characters."""
    if run is None:
        return
    import mlflow

    mlflow.log_metrics(metric_names(metrics), step=step)


def metric_names(metrics: dict) -> dict[str, float]:
    """The numeric, non-NaN ``metrics`` under names MLflow accepts: ``@`` -> ``_at_``, any other character but
    letters, digits, ``_ - . : /`` and space -> ``_`` (e.g. a representation named ``oracle (generator's cells)``)."""
    return {
        re.sub(r"[^\w\-.:/ ]", "_", k.replace("@", "_at_")): float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and v == v
    }


def log_torch_model(
    run,
    model,
    registered_name: str | None = None,
    description: str = "",
    tags: dict | None = None,
    alias: bool = True,
) -> None:
    """Log a PyTorch model to ``run`` with ``mlflow.pytorch`` (pickle format, torch pinned; no-op without a
    run); with ``registered_name`` it also becomes a new version of that registered model (stable names:
    ``gb_kedro.rna_encoder.<grouping>``, ``gb_kedro.wsi_encoder``, ``gb_kedro.multimodal.<row>``) with a
    ``description``, ``tags`` on the model and the version, and (``alias``: a trained model) the alias
    ``latest-trained``."""
    if run is None:
        return
    import mlflow.pytorch
    import torch

    info = mlflow.pytorch.log_model(
        model,
        name="model",
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        registered_model_name=registered_name,
    )
    if registered_name and getattr(info, "registered_model_version", None) is not None:
        describe_registered_model(registered_name, str(info.registered_model_version), description, tags or {}, alias)


def describe_registered_model(name: str, version: str, description: str, tags: dict, alias: bool = True) -> None:
    """Description and tags on a registered model and its version; with ``alias``, ``latest-trained`` -> ``version``."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if description:
        client.update_registered_model(name, description=description)
        client.update_model_version(name, version, description=description)
    for key, value in tags.items():
        client.set_registered_model_tag(name, key, str(value))
        client.set_model_version_tag(name, version, key, str(value))
    if alias:
        client.set_registered_model_alias(name, "latest-trained", version)


def registered_versions(name: str) -> int:
    """How many versions of the registered model ``name`` exist (0 when there is none, or no tracking)."""
    import mlflow
    from mlflow import MlflowClient

    if mlflow.active_run() is None:
        return 0
    return len(MlflowClient().search_model_versions(f"name = '{name}'"))


@functools.cache
def git_commit() -> str:
    """The project's current commit (short), or ``unknown`` outside a git checkout."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def log_parent_metrics(metrics: dict) -> None:
    """Headline metrics on the pipeline's own (parent) run, when it is the active run."""
    import mlflow

    if mlflow.active_run() is not None:
        log_metrics(mlflow.active_run(), metrics)


def log_evaluation(name: str, run_id: str | None, metrics: dict, figure=None, figure_name: str | None = None) -> None:
    """Reopen a training node's nested run and add its evaluation metrics (``eval/*``) and figure."""
    if not run_id:
        return
    with nested_run(name, run_id=run_id) as run:
        log_metrics(run, {f"eval/{k}": v for k, v in metrics.items()})
        if run is not None and figure is not None:
            import mlflow

            mlflow.log_figure(figure, figure_name or f"{name}.png")


def log_sklearn_model(run, model, registered_name: str | None = None) -> None:
    """Log a scikit-learn model to ``run`` (no-op without a run). Its requirements are named, not inferred: MLflow's
    inference reloads the model in a subprocess (9.3 s per model here, against 0.03 s)."""
    if run is None:
        return
    import cloudpickle
    import mlflow.sklearn
    import sklearn

    requirements = [
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={np.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]
    mlflow.sklearn.log_model(model, name="model", registered_model_name=registered_name, pip_requirements=requirements)


def log_figure(fig, name: str) -> None:
    """Add a figure to the active (kedro-mlflow) run, if any, under ``reporting/``."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_figure(fig, f"reporting/{name}")

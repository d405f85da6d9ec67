"""Project pipelines.

``synthetic_cohort`` writes the embedded demo cohort into ``data/01_raw``; ``analysis`` is the method
itself (everything that reads ``data/01_raw``); ``synthetic_oracle`` records what the generator drew in each
tumour patch once the slides are tiled (the image axis probe's ceiling row).  ``__default__`` is all three, so
``kedro run`` on a fresh clone runs the whole chain on the embedded cohort.  On real data run ``kedro run --env real --pipeline
analysis``: the ``real`` environment also disables the generator, so it can never touch a user's files.

The pipelines' shape (:class:`gb_kedro.config.PipelineShape`: RNA groupings, Table 1 rows, the model row, the
retraining namespaces) is read from the project's conf (``conf/base`` + the run's environment: ``--env`` or
``KEDRO_ENV``, else ``conf/local``) when the pipelines are built.
"""

from __future__ import annotations

import os
from pathlib import Path

from kedro.pipeline import Pipeline

from gb_kedro.config import PipelineShape
from gb_kedro.pipelines import data_engineering, multimodal, reporting, rna_encoding, synthetic_cohort, wsi_encoding


def pipeline_shape(project_path: str | Path | None = None) -> PipelineShape:
    """The shape in the conf of the project at ``project_path`` (default: the Kedro project around the working
    directory), with the environment of the run (``KEDRO_ENV``; the command line sets it from ``--env``)."""
    from kedro.framework.project import settings
    from kedro.utils import find_kedro_project

    root = Path(project_path) if project_path else (find_kedro_project(Path.cwd()) or Path.cwd())
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(root / settings.CONF_SOURCE), env=os.environ.get("KEDRO_ENV"), **settings.CONFIG_LOADER_ARGS
    )
    return PipelineShape.of(loader["parameters"])


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    shape = pipeline_shape()
    pipelines: dict[str, Pipeline] = {
        "synthetic_cohort": synthetic_cohort.create_pipeline(),
        "data_engineering": data_engineering.create_pipeline(),
        "rna_encoding": rna_encoding.create_pipeline(shape=shape),
        "wsi_encoding": wsi_encoding.create_pipeline(shape=shape),
        "multimodal": multimodal.create_pipeline(shape=shape),
        "reporting": reporting.create_pipeline(shape=shape),
    }
    analysis = sum(
        (pipelines[name] for name in ("data_engineering", "rna_encoding", "wsi_encoding", "multimodal", "reporting")),
        Pipeline([]),
    )
    pipelines["analysis"] = analysis
    pipelines["synthetic_oracle"] = synthetic_cohort.create_oracle_pipeline()
    pipelines["__default__"] = pipelines["synthetic_cohort"] + analysis + pipelines["synthetic_oracle"]
    return pipelines

"""Project pipelines.

``synthetic_cohort`` writes the embedded demo cohort into ``data/01_raw``; ``analysis`` is the method
itself (everything that reads ``data/01_raw``).  ``__default__`` is both, so ``kedro run`` on a fresh
clone runs the whole chain on the embedded cohort.  On real data run ``kedro run --env real --pipeline
analysis``: the ``real`` environment also disables the generator, so it can never touch a user's files.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from gb_kedro.pipelines import data_engineering, multimodal, reporting, rna_encoding, synthetic_cohort, wsi_encoding


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines: dict[str, Pipeline] = {
        "synthetic_cohort": synthetic_cohort.create_pipeline(),
        "data_engineering": data_engineering.create_pipeline(),
        "rna_encoding": rna_encoding.create_pipeline(),
        "wsi_encoding": wsi_encoding.create_pipeline(),
        "multimodal": multimodal.create_pipeline(),
        "reporting": reporting.create_pipeline(),
    }
    analysis = sum(
        (pipelines[name] for name in ("data_engineering", "rna_encoding", "wsi_encoding", "multimodal", "reporting")),
        Pipeline([]),
    )
    pipelines["analysis"] = analysis
    pipelines["__default__"] = pipelines["synthetic_cohort"] + analysis
    return pipelines

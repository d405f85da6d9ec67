"""The catalog as kedro-viz shows it: every dataset of the default pipeline sits in a layer."""

from __future__ import annotations

LAYERS = {"raw", "intermediate", "primary", "feature", "model_input", "models", "model_output", "reporting"}


def test_every_dataset_of_the_default_pipeline_has_a_kedro_viz_layer(project_copy):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    from kedro.framework.project import pipelines

    with KedroSession.create(project_path=project_copy) as session:
        catalog = session.load_context().catalog
        names = [n for n in pipelines["__default__"].datasets() if not n.startswith("params:") and n != "parameters"]
        layers = {
            n: ((getattr(catalog.get(n), "metadata", None) or {}).get("kedro-viz") or {}).get("layer") for n in names
        }
    assert len(names) > 100
    missing = sorted(n for n, layer in layers.items() if layer is None)
    assert not missing, missing
    assert set(layers.values()) <= LAYERS

"""Shared fixtures: the real public files in ../shared/data (skipped when absent) and a tiny synthetic cohort."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gb_kedro.datasets.table import read_table
from gb_kedro.genes import prepare_annotation
from gb_kedro.synthetic.cohort import Preset, generate
from tests.helpers import TINY_RUN_PARAMS, base_options, copy_project

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GB_KEDRO_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")


def shared_file(relative: str) -> Path:
    """Path of a real public file in ../shared/data; skips the test when it is not there."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real test file {relative} not found under {SHARED_DATA} (../shared is absent)")
    return path


def tiny_preset() -> Preset:
    return Preset.from_dict(base_options("synthetic_cohort.presets.tiny"))


@pytest.fixture(scope="session", name="tiny_preset")
def tiny_preset_fixture() -> Preset:
    return tiny_preset()


@pytest.fixture(scope="session")
def tiny_cohort() -> dict:
    """The in-memory files of the ``tiny`` preset (seed 7)."""
    return generate(tiny_preset(), seed=7)


@pytest.fixture(scope="session")
def tiny_genes(tiny_cohort):
    genes, dropped = prepare_annotation(tiny_cohort["annotation"])
    return genes


@pytest.fixture(scope="session")
def gencode():
    return prepare_annotation(read_table(shared_file("annotation/gencode_v36_genes.tsv")))


def run_kedro(project_path: Path, pipeline: str, params: dict | None = None, env: str | None = None) -> dict:
    """Run a registered pipeline of the project at ``project_path`` in-process."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    try:
        with KedroSession.create(project_path=project_path, env=env, runtime_params=params or {}) as session:
            return session.run(pipeline_names=[pipeline])
    finally:  # a failed run may leave kedro-mlflow's run open in this process
        while mlflow.active_run() is not None:
            mlflow.end_run()


@pytest.fixture()
def project_copy(tmp_path, monkeypatch) -> Path:
    """A throw-away copy of the Kedro project (config + pyproject) to run pipelines in; cwd = the copy."""
    copy_project(tmp_path)
    for layer in (
        "01_raw",
        "02_intermediate",
        "03_primary",
        "04_feature",
        "05_model_input",
        "06_models",
        "07_model_output",
        "08_reporting",
    ):
        (tmp_path / "data" / layer).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def shared():
    """``shared("ppi/x.tsv")`` -> path of a real file in ../shared/data, or skip the test."""
    return shared_file


@pytest.fixture(scope="session")
def kedro_run():
    """``kedro_run(project_path, pipeline, params, env)`` runs a pipeline in-process."""
    return run_kedro


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """A project copy on which ``kedro run`` (the default pipeline, ``tiny`` preset) has run once."""
    path = copy_project(tmp_path_factory.mktemp("tiny_project"))
    cwd = os.getcwd()
    os.chdir(path)
    try:
        run_kedro(path, "__default__", TINY_RUN_PARAMS)
    finally:
        os.chdir(cwd)
    return path

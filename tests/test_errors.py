"""Bad input and mismatched runs stop with one line, from the command line too."""

from __future__ import annotations

import pytest

from gb_kedro.errors import InputDataError
from tests.helpers import copy_project, kedro_cli


def test_a_stage_run_with_another_split_stops_with_the_mismatch(tiny_project, kedro_run, monkeypatch):
    monkeypatch.chdir(tiny_project)
    with pytest.raises(
        InputDataError,
        match=r"patch_index: multimodal: it was made with split\.mode=all, this run asks for split\.mode=mouse: run data_engineering first",
    ):
        kedro_run(tiny_project, "multimodal", {"split": {"mode": "mouse"}})


def test_evaluation_refuses_a_model_trained_for_another_split_or_index(tiny_project):
    import pandas as pd

    from gb_kedro.datasets import TorchModelDataset
    from gb_kedro.pipelines.multimodal import nodes
    from tests.helpers import base_options

    model = TorchModelDataset(str(tiny_project / "data/06_models/multimodal_ppi_no_recon.pt")).load()
    index = pd.read_parquet(tiny_project / "data/03_primary/patch_index.parquet")
    split = base_options("split")
    model.meta["split"] = {**model.meta["split"], "mode": "mouse"}
    with pytest.raises(InputDataError, match=r"it was made with split\.mode=mouse, this run asks for split\.mode=all"):
        nodes.evaluate_multimodal(model, index, None, None, None, split, {}, {})
    model.meta["split"] = split
    with pytest.raises(InputDataError, match="trained on another patch index"):
        nodes.evaluate_multimodal(model, index.iloc[1:], None, None, None, split, {}, {})


def test_invalid_enumerated_parameter_is_one_line_listing_the_allowed_values(tiny_project):
    result = kedro_cli(tiny_project, "--pipelines", "multimodal", "--params", "split.mode=mice")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "Error: bad input: conf/base/parameters.yml: parameter 'split.mode' is 'mice'; allowed: all, patch, mouse, lineage"
    ], result.stderr


def test_missing_real_data_dir_and_empty_star_folder_are_one_line_each(tmp_path):
    project = copy_project(tmp_path / "project")
    result = kedro_cli(
        project, "--env", "real", "--pipelines", "data_engineering", "--params", f"real_data_dir={tmp_path / 'nowhere'}"
    )
    assert result.returncode != 0
    assert (
        len(result.stderr.strip().splitlines()) == 1
        and "Error: bad input: " in result.stderr
        and "nowhere" in result.stderr
    ), result.stderr
    # an existing folder whose STAR download is empty
    data = tmp_path / "mine"
    (data / "tcga" / "star_counts").mkdir(parents=True)
    headers = {  # the tables with required columns have them (their headers are checked before the first node)
        "cohort/sample_sheet.tsv": "sample_id\tpatient_id\tlineage_id\n",
        "slides/manifest.tsv": "slide_id\tmouse_id\tlineage_id\tpatient_id\tpath\n",
    }
    for relative in (
        "annotation/gencode.v36.genes.tsv",
        "tcga/gdc_sample_sheet.tsv",
        "cohort/expression.tsv",
        "cohort/sample_sheet.tsv",
        "ppi/kg.csv",
        "slides/manifest.tsv",
    ):
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text(headers.get(relative, "x\n"))
    result = kedro_cli(project, "--env", "real", "--pipelines", "data_engineering", "--params", f"real_data_dir={data}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "star_counts: no TCGA expression file in this folder" in lines[0], result.stderr


def test_the_split_mismatch_from_the_command_line_is_one_line_and_fails(tiny_project):
    result = kedro_cli(tiny_project, "--pipelines", "multimodal", "--params", "split.mode=mouse")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "it was made with split.mode=all, this run asks for split.mode=mouse" in lines[0], (
        result.stderr
    )
    assert lines[0].startswith("Error: bad input: ")
    assert "this run asks for split.mode=mouse" not in result.stdout  # said once, not again in the log


def test_input_errors_survive_a_process_boundary_and_lists_say_what_they_left_out():
    import pickle

    from gb_kedro.errors import listed

    error = pickle.loads(pickle.dumps(InputDataError("slide S3 (s3.svs)", "corrupt")))
    assert isinstance(error, InputDataError) and (error.source, error.problem) == ("slide S3 (s3.svs)", "corrupt")
    assert str(error) == "slide S3 (s3.svs): corrupt"
    assert listed([f"L{i}" for i in range(8)]) == "L0, L1, L2, L3, L4 and 3 more"
    assert listed(["a", "b"]) == "a, b"


def test_a_missing_input_column_stops_the_run_before_the_first_node(tmp_path):
    """Required columns are checked on the header of every table the pipeline reads, before anything runs."""
    import pandas as pd
    from kedro.io import DataCatalog
    from kedro.pipeline import Node, Pipeline

    from gb_kedro.datasets import TableDataset
    from gb_kedro.hooks import check_raw_inputs

    path = tmp_path / "manifest.tsv"
    pd.DataFrame({"slide_id": ["S1"], "lineage_id": ["L1"], "path": ["s1.svs"]}).to_csv(path, sep="\t", index=False)
    required = ["slide_id", "mouse_id", "lineage_id", "patient_id", "path"]
    catalog = DataCatalog({"slide_manifest": TableDataset(str(path), required_columns=required)})
    pipeline = Pipeline([Node(len, "slide_manifest", "n", name="count")])
    with pytest.raises(
        InputDataError, match=r"manifest\.tsv: missing required column\(s\) \['mouse_id', 'patient_id'\]"
    ):
        check_raw_inputs(pipeline, catalog)
    optional = DataCatalog({"slide_manifest": TableDataset(str(tmp_path / "none.tsv"), missing_ok=True)})
    check_raw_inputs(pipeline, optional)  # an optional input that is absent is fine

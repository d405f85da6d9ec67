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
    for relative in (
        "annotation/gencode.v36.genes.tsv",
        "tcga/gdc_sample_sheet.tsv",
        "cohort/expression.tsv",
        "cohort/sample_sheet.tsv",
        "ppi/kg.csv",
        "slides/manifest.tsv",
    ):
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text("x\n")
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

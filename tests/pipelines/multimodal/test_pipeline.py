import json

import mlflow
import pandas as pd

from gb_kedro.config import BASELINE_ROWS
from tests.helpers import base_options

ROWS = base_options("multimodal.table1")["rows"]
TORCH_ROWS = list(ROWS)
ALL_ROWS = [*ROWS, *BASELINE_ROWS]
SETS = ["patch", "mouse", "lineage", "lineage_only"]


def _children(project, parent_name):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["gb_kedro"])
        parents = runs.loc[runs["tags.mlflow.runName"].str.startswith(parent_name + " |"), "run_id"]
        children = runs[runs["tags.mlflow.parentRunId"].isin(parents)]
        models = mlflow.search_logged_models(experiment_ids=list(runs["experiment_id"].unique()))
        return children, models
    finally:
        mlflow.set_tracking_uri("")


def test_table1_rows_outputs_and_mlflow(tiny_project):
    data = tiny_project / "data"
    table = pd.read_csv(data / "08_reporting" / "table1.csv")
    # one training, every row scored on each held-out set (unseen lineages also among their own samples only)
    assert len(table) == len(ALL_ROWS) * len(SETS) and list(table.columns[:5]) == [
        "configuration",
        "split",
        "held_out",
        "patient_accuracy",
        "lineage_accuracy",
    ]
    assert (table["split"] == "all").all() and sorted(set(table["held_out"])) == sorted(SETS)
    assert (
        (table["lineage_accuracy_ci_low"] <= table["lineage_accuracy"])
        & (table["lineage_accuracy"] <= table["lineage_accuracy_ci_high"])
    ).all()
    only = table[table["held_out"] == "lineage_only"].iloc[0]
    assert only["n_candidates"] == only["n_lineages"] < table[table["held_out"] == "lineage"].iloc[0]["n_candidates"]
    markdown = (data / "08_reporting" / "table1.md").read_text()
    assert "Unseen mice" in markdown and "Pixel-morphometry baseline" in markdown and "split `all`" in markdown
    for row in TORCH_ROWS:
        metrics = json.loads((data / "08_reporting" / f"retrieval_metrics_{row}.json").read_text())
        assert metrics["row"] == row and sorted(metrics["sets"]) == sorted(SETS)
        assert 0 <= metrics["sets"]["mouse"]["lineage_accuracy"] <= 1
        assert (data / "08_reporting" / f"retrieval_confusion_{row}.png").is_file()
        assert (data / "06_models" / f"multimodal_{row}.pt").is_file()
    predictions = pd.read_parquet(data / "07_model_output" / "retrieval_predictions_ppi_no_recon.parquet")
    index = pd.read_parquet(data / "03_primary" / "patch_index.parquet")
    assert len(predictions) == int((index["split"] == "test").sum())
    for row in BASELINE_ROWS:  # the non-deep rows answer the same patches
        answers = pd.read_parquet(data / "07_model_output" / f"retrieval_predictions_{row}.parquet")
        assert answers[["slide_id", "x", "y"]].equals(predictions[["slide_id", "x", "y"]]), row
    paired = pd.read_csv(data / "08_reporting" / "table1_paired.csv")
    reference = base_options("multimodal.evaluation")["paired_reference"]
    assert set(paired["row"]) == set(ALL_ROWS) - {reference} and (paired["reference"] == reference).all()
    assert (paired["difference_ci_low"] <= paired["difference"]).all() and set(paired["held_out"]) == set(SETS[:3])
    bridge = json.loads((data / "08_reporting" / "retrieval_metrics_expression_bridge.json").read_text())
    assert bridge["n_genes_kept"] == len(bridge["genes"]) >= 1
    history = pd.read_csv(data / "08_reporting" / "multimodal_history_ppi_no_recon.tsv", sep="\t")
    assert history["train/itc"].iloc[-1] < history["train/itc"].iloc[0]

    children, models = _children(tiny_project, "__default__")
    # Held-out patches are never trained on: each trained row was fed exactly the `train` patches.
    trained = children[children["tags.mlflow.runName"].isin([f"multimodal.{row}" for row in TORCH_ROWS])]
    assert (
        len(trained) == len(TORCH_ROWS)
        and (trained["params.train_patches"].astype(int) == int((index["split"] == "train").sum())).all()
    )
    for row in ALL_ROWS:
        run = children[children["tags.mlflow.runName"] == f"multimodal.{row}"]
        assert len(run) == 1, row
        assert run["metrics.eval/mouse/lineage_accuracy"].notna().all(), row
        assert set(run["run_id"]) <= set(models["source_run_id"]), row  # a logged model per row


def test_multimodal_runs_alone_on_persisted_encoders(tiny_project, kedro_run, monkeypatch):
    monkeypatch.chdir(tiny_project)
    before = (tiny_project / "data" / "08_reporting" / "table1.csv").stat().st_mtime
    kedro_run(tiny_project, "multimodal")
    assert (tiny_project / "data" / "08_reporting" / "table1.csv").stat().st_mtime > before
    children, _ = _children(tiny_project, "multimodal")
    assert {f"multimodal.{row}" for row in ALL_ROWS} <= set(children["tags.mlflow.runName"])

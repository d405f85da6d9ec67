import json

import mlflow
import pandas as pd

from tests.helpers import TINY_RUN_PARAMS


def test_outputs_metrics_and_mlflow_run(tiny_project):
    data = tiny_project / "data"
    assert (data / "06_models" / "wsi_encoder.pt").is_file()
    index = pd.read_parquet(data / "03_primary" / "patch_index.parquet")
    emb = pd.read_parquet(data / "07_model_output" / "wsi_embeddings.parquet")
    assert len(emb) == len(index) and {"split", "lineage_id"} <= set(emb.columns)
    metrics = json.loads((data / "08_reporting" / "wsi_metrics.json").read_text())
    mice = index["held_out"] == "mouse"
    assert metrics["split_mode"] == "all" and metrics["mouse/model_n_test"] == int(mice.sum())
    assert metrics["patch/model_n_test"] == int((index["held_out"] == "patch").sum())
    assert "lineage/model_accuracy" not in metrics  # unseen lineages have no training patch to be retrieved
    assert metrics["mouse/model_chance"] == 1 / index.loc[index["split"] == "train", "lineage_id"].nunique()
    for name in ("model", "colour_baseline", "morphometry_baseline", "model_classifier", "morphometry_classifier"):
        assert 0 <= metrics[f"mouse/{name}_accuracy"] <= 1
    features = pd.read_parquet(data / "04_feature" / "morphometry_features.parquet")
    assert len(features) == len(index) and features["nuclei_count"].notna().all()
    assert (data / "08_reporting" / "wsi_confusion.png").is_file()
    history = pd.read_csv(data / "08_reporting" / "wsi_training_history.tsv", sep="\t")
    # The lineage softmax of the warm-up learns, and the triplet stage that follows does not collapse
    # (collapse: all normalised embeddings equal, spread -> 0, triplet loss pinned at the margin).
    params = __import__("yaml").safe_load((tiny_project / "conf/base/parameters_wsi_encoding.yml").read_text())[
        "wsi_encoding"
    ]
    warmup, margin = params["loss"]["warmup_epochs"], params["loss"]["margin"]
    assert history["train/ce"].iloc[warmup - 1] < history["train/ce"].iloc[0]
    assert history["train/spread"].iloc[-1] >= 0.5 * history["train/spread"].iloc[warmup - 1]
    assert abs(history["train/triplet"].iloc[-1] - margin) > 0.01
    mlflow.set_tracking_uri(f"sqlite:///{tiny_project / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["gb_kedro"])
        # Other tests of this session run other pipelines in-process: keep the children of the default run.
        default = runs.loc[runs["tags.mlflow.runName"].str.startswith("__default__ |"), "run_id"]
        run = runs[(runs["tags.mlflow.runName"] == "wsi_encoding") & runs["tags.mlflow.parentRunId"].isin(default)]
        assert len(run) == 1 and run["metrics.eval/mouse/model_accuracy"].notna().all()
        models = mlflow.search_logged_models(experiment_ids=list(runs["experiment_id"].unique()))
        assert set(run["run_id"]) <= set(models["source_run_id"])
    finally:
        mlflow.set_tracking_uri("")


def test_a_resumed_finished_training_registers_no_new_model_version(tiny_project, kedro_run, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tiny_project)

    def versions() -> int:
        mlflow.set_tracking_uri(f"sqlite:///{tiny_project / 'mlflow.db'}")
        try:
            return len(MlflowClient().search_model_versions("name = 'gb_kedro.wsi_encoder'"))
        finally:
            mlflow.set_tracking_uri("")

    before = versions()
    assert before >= 1
    kedro_run(tiny_project, "wsi_encoding", TINY_RUN_PARAMS)  # resumes the finished checkpoint
    assert versions() == before
    client_model = None
    mlflow.set_tracking_uri(f"sqlite:///{tiny_project / 'mlflow.db'}")
    try:
        client_model = MlflowClient().get_registered_model("gb_kedro.wsi_encoder")
    finally:
        mlflow.set_tracking_uri("")
    assert "ViT" in client_model.description and "latest-trained" in client_model.aliases
    assert {"split", "commit"} <= set(client_model.tags)

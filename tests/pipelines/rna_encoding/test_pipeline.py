import json

import mlflow
import pandas as pd

from gb_kedro.pipeline_registry import register_pipelines


def test_both_groupings_are_namespaced_variants():
    pipeline = register_pipelines()["rna_encoding"]
    names = {n.name for n in pipeline.nodes}
    assert {"ppi.train_rna_encoder", "chromosome.train_rna_encoder", "split_tcga_samples"} <= names
    inputs = pipeline.inputs()
    assert {
        "gene_groups_ppi",
        "gene_groups_chromosome",
        "params:ppi.rna_variant",
        "params:chromosome.rna_variant",
    } <= inputs


def test_outputs_and_mlflow_runs_of_the_default_run(tiny_project):
    data = tiny_project / "data"
    for variant in ("ppi", "chromosome"):
        assert (data / "06_models" / f"rna_encoder_{variant}.pt").is_file()
        emb = pd.read_parquet(data / "07_model_output" / f"rna_embeddings_{variant}.parquet")
        assert set(emb["source"]) == {"tcga", "cohort"} and (emb["source"] == "cohort").sum() == 7
        metrics = json.loads((data / "08_reporting" / f"rna_metrics_{variant}.json").read_text())
        assert {"knn_site_accuracy_encoder", "knn_site_accuracy_pca", "cohort_nearest_brain_fraction_encoder"} <= set(
            metrics
        )
        assert (data / "08_reporting" / f"rna_tsne_{variant}.png").is_file()
        history = pd.read_csv(data / "08_reporting" / f"rna_training_history_{variant}.tsv", sep="\t")
        assert set(history["stage"]) == {"pretrain", "cohort"}
    mlflow.set_tracking_uri(f"sqlite:///{tiny_project / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["gb_kedro"])
        default = runs.loc[runs["tags.mlflow.runName"].str.startswith("__default__ |"), "run_id"]
        nested = runs[
            runs["tags.mlflow.runName"].str.startswith("rna_encoding.") & runs["tags.mlflow.parentRunId"].isin(default)
        ]
        assert sorted(nested["tags.mlflow.runName"]) == ["rna_encoding.chromosome", "rna_encoding.ppi"]
        assert nested["tags.mlflow.parentRunId"].notna().all()
        assert (
            nested["metrics.pretrain/train/loss"].notna().all()
            and nested["metrics.eval/knn_site_accuracy_encoder"].notna().all()
        )
        models = mlflow.search_logged_models(experiment_ids=list(runs["experiment_id"].unique()))
        assert set(nested["run_id"]) <= set(models["source_run_id"])
    finally:
        mlflow.set_tracking_uri("")

import json

import mlflow
import pandas as pd


def test_reporting_outputs(tiny_project):
    rep = tiny_project / "data" / "08_reporting"
    table2 = pd.read_csv(rep / "table2.csv")
    assert list(table2.columns) == ["rank", "gene_id", "occurrence", "symbol"]
    assert len(table2) == 15 and table2["rank"].tolist() == list(range(1, 16))
    assert table2["occurrence"].is_monotonic_decreasing and table2["gene_id"].str.match(r"ENSG\d+\.\d+$").all()
    assert (rep / "table2.md").read_text().startswith("| Rank | Gene ID | Occurrence | Symbol |")
    validation = json.loads((rep / "gradcam_validation.json").read_text())
    for key in (
        "gradcam_precision",
        "variance_precision",
        "random_precision_expected",
        "permutation_null_p95",
        "permutation_p_value",
    ):
        assert 0.0 <= validation[key] <= 1.0, key
    assert validation["n_permutations"] == len(validation["permutation_null_values"]) >= 1
    enrichment = pd.read_csv(rep / "enrichment.tsv", sep="\t")
    assert {"ranking", "gene_set", "overlap", "p_value", "q_value", "significant"} <= set(enrichment.columns)
    assert set(enrichment["ranking"]) == {"gradcam", "morphology_link"}
    link = pd.read_csv(rep / "morphology_link.csv")
    assert list(link.columns[:8]) == ["rank", "gene_id", "symbol", "r2", "spearman_r", "p_value", "q_value", "group"]
    assert link["r2"].is_monotonic_decreasing and link["q_value"].between(0, 1).all()
    assert {"r2_wsi", "r2_morphometry", "r2_wsi+morphometry"} <= set(link.columns)
    assert (rep / "morphology_link.md").read_text().count("\n|") >= 15
    scoring = pd.read_csv(rep / "gene_scoring.tsv", sep="\t").set_index("ranking")
    assert {"link_wsi", "link_morphometry", "gradcam_seed_0", "gradcam_seeds", "variance", "random"} <= set(
        scoring.index
    )
    assert scoring["auroc_drivers_vs_decoys"].between(0, 1).all()
    assert (
        scoring["permutation_p"].drop("random").between(0, 1).all()
        and scoring.loc["random", "auroc_drivers_vs_decoys"] == 0.5
    )
    assert (scoring["n_drivers"] > 0).all() and {"precision_at_15", "decoys_top_15", "decoys_top_50"} <= set(
        scoring.columns
    )
    axes = pd.read_csv(rep / "axis_recovery.tsv", sep="\t")
    assert axes["axis"].nunique() == 6 and set(axes["ranking"]) == set(scoring.index)
    stability = json.loads((rep / "seed_stability.json").read_text())
    assert (
        stability["n_seeds"] == 2
        and 0 <= stability["jaccard_mean"] <= 1
        and list(stability["jaccard_pairs"]) == ["0-1"]
    )
    seeds = pd.read_csv(rep / "table2_seeds.tsv", sep="\t")
    assert (seeds["occurrence"] == seeds["occurrence_seed_0"] + seeds["occurrence_seed_1"]).all()
    probe = pd.read_csv(rep / "axis_probe.tsv", sep="\t").set_index("representation")
    assert {"ppi", "chromosome", "pca", "chance (commonest level)"} == set(probe.index) and probe["mean"].between(
        0, 1
    ).all()
    image_axes = pd.read_csv(rep / "image_axis_probe.tsv", sep="\t")
    oracle = image_axes[image_axes["representation"] == "oracle (generator's cells)"]  # the default run's ceiling row
    assert len(oracle) == len(image_axes[image_axes["representation"] == "wsi_encoder"]) > 0
    assert oracle["accuracy"].between(0, 1).all()
    assert ((image_axes["ci_low"] <= image_axes["accuracy"]) & (image_axes["accuracy"] <= image_axes["ci_high"])).all()
    assert set(image_axes["bootstrap_unit"]) <= {"lineage", "slide"}
    assert enrichment["gene_set"].str.startswith("PLANTED_MODULE_").all()
    tests = pd.read_csv(rep / "survival_tests.tsv", sep="\t")
    assert tests["analysis"].str.startswith("mouse survival").any()
    assert (tests["p_value"].between(0, 1) | (tests["groups"] < 2)).all()  # one group: no test (NaN)
    mice = pd.read_csv(rep / "mouse_outcomes.tsv", sep="\t")
    assert {"survival_days", "rna_cluster", "image_cluster", "majority_lineage"} <= set(mice.columns)
    for png in ("gradcam.png", "survival_km.png", "training_curves.png", "morphology_link.png", "seed_stability.png"):
        assert (rep / png).stat().st_size > 1000, png
    html = (rep / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") >= 8
    # the header says which run made it; Table 2 marks the planted genes; every section has a caption
    assert (
        "MLflow run" in html
        and "embedded synthetic cohort, preset tiny" in html
        and "evaluation split</th><td>all" in html
    )
    assert "<th>planted</th>" in html and html.count('class="note"') >= 7
    for heading in (
        "Table 1",
        "Table 2",
        "Planted drivers",
        "Table 2 across seeds",
        "Morphology-link genes",
        "Every gene ranking against the planted truth",
        "morphology axes read from the embeddings",
        "enrichment",
        "survival",
        "Fig. 5",
        "Training curves",
        "Slide QC",
    ):
        assert heading in html, heading


def test_models_registered_and_figures_logged(tiny_project):
    mlflow.set_tracking_uri(f"sqlite:///{tiny_project / 'mlflow.db'}")
    try:
        client = mlflow.MlflowClient()
        names = {m.name for m in client.search_registered_models()}
        assert {
            "gb_kedro.rna_encoder.ppi",
            "gb_kedro.rna_encoder.chromosome",
            "gb_kedro.wsi_encoder",
            "gb_kedro.multimodal.ppi_no_recon",
        } <= names
        runs = mlflow.search_runs(experiment_names=["gb_kedro"])
        parent = runs[runs["tags.mlflow.runName"] == "__default__ | preset tiny | split all"]
        assert len(parent) == 1 and parent["metrics.table1/ppi_no_recon/mouse/lineage_accuracy"].between(0, 1).all()
        assert parent["metrics.genes/gradcam_precision"].notna().all()
        assert parent["metrics.genes/link_wsi/auroc_drivers_vs_decoys"].between(0, 1).all()
        assert parent["metrics.genes/gradcam_seeds/jaccard_mean"].between(0, 1).all()
        oracle = "metrics.image_axis_probe/oracle _generator_s cells_/lineage/chromatin_texture"
        assert parent[oracle].between(0, 1).all()  # a name MLflow accepts
        experiment = client.get_experiment_by_name("gb_kedro")
        assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
        default = parent["run_id"].iloc[0]
        artifacts = {a.path for a in client.list_artifacts(default, "reporting")}
        assert {
            "reporting/gradcam.png",
            "reporting/survival_km.png",
            "reporting/training_curves.png",
            "reporting/morphology_link.png",
            "reporting/seed_stability.png",
        } <= artifacts
        assert any(a.path == "report.html" for a in client.list_artifacts(default))
        # the parent run is described and tagged with the commit; the runner tag names a class, not an object
        tags = client.get_run(default).data.tags
        assert "Nested runs" in tags["mlflow.note.content"] and tags["commit"]
        assert "object at 0x" not in tags.get("runner", "")
        # descriptions follow each row's configuration; only trained models carry the alias latest-trained
        described = {m.name: m for m in client.search_registered_models()}
        assert "RNA decoding" not in described["gb_kedro.multimodal.ppi_no_recon"].description
        assert "RNA decoding" in described["gb_kedro.multimodal.all_losses"].description
        assert "frozen" in described["gb_kedro.multimodal.frozen_encoders"].description
        assert "untrained" in described["gb_kedro.multimodal.random_init"].description
        assert "latest-trained" not in described["gb_kedro.multimodal.random_init"].aliases
        assert "latest-trained" in described["gb_kedro.multimodal.ppi_no_recon"].aliases
    finally:
        mlflow.set_tracking_uri("")


def test_report_renders_in_headless_chromium(tiny_project, tmp_path):
    import shutil
    import subprocess

    import pytest

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium to run this check)")
    shot = tmp_path / "report.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
    ]
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", (tiny_project / "data" / "08_reporting" / "report.html").as_uri()],
        check=True,
        timeout=120,
        capture_output=True,
    )
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", (tiny_project / "data" / "08_reporting" / "report.html").as_uri()],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    assert dom.count("<img") >= 6 and "Table 2: Grad-CAM genes" in dom

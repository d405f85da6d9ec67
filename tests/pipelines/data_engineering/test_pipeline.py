import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

from gb_kedro.pipeline_registry import register_pipelines


def test_registry():
    pipelines = register_pipelines()
    assert {"synthetic_cohort", "data_engineering", "analysis", "__default__"} <= set(pipelines)
    assert not {n.name for n in pipelines["analysis"].nodes} & {n.name for n in pipelines["synthetic_cohort"].nodes}


def test_outputs_of_the_default_run(tiny_project):
    data = tiny_project / "data"
    tcga = pd.read_parquet(data / "05_model_input" / "tcga_features.parquet")
    cohort = pd.read_parquet(data / "05_model_input" / "cohort_features.parquet")
    genes = pd.read_csv(data / "05_model_input" / "gene_table.tsv", sep="\t")
    assert tcga.columns.tolist() == cohort.columns.tolist() == genes["gene_id"].tolist()
    assert tcga.shape[0] == 40 and cohort.shape[0] == 7
    np.testing.assert_allclose(tcga.mean().abs().max(), 0, atol=1e-4)  # z-scored with TCGA statistics
    assert genes["gene_id"].str.match(r"^ENSG\d{11}$").all() and genes["gene_id_versioned"].str.contains(r"\.").all()
    dropped = pd.read_csv(data / "08_reporting" / "dropped_genes.tsv", sep="\t")
    assert {"annotation", "tcga", "harmonise", "normalise"} <= set(dropped["stage"])
    assert dropped["reason"].str.contains("PAR_Y").any() and dropped["reason"].str.contains("low variance").any()
    summary = json.loads((data / "08_reporting" / "data_engineering_summary.json").read_text())
    assert summary["genes_kept"] == len(genes)


def test_planted_drivers_survive_the_default_variance_rule(tiny_project):
    data = tiny_project / "data"
    genes = pd.read_csv(data / "05_model_input" / "gene_table.tsv", sep="\t")
    truth = pd.read_csv(data / "01_raw" / "synthetic_truth" / "genes.tsv", sep="\t")
    drivers = truth.loc[truth["role"] == "driver", "gene_id"].str.split(".").str[0]
    assert len(drivers) >= 20 and drivers.isin(genes["gene_id"]).all()


def test_gene_groups(tiny_project):
    data = tiny_project / "data"
    truth = pd.read_csv(data / "01_raw" / "synthetic_truth" / "genes.tsv", sep="\t")
    truth["gene_id"] = truth["gene_id"].str.split(".").str[0]
    for grouping in ("ppi", "chromosome"):
        groups = pd.read_csv(data / "05_model_input" / f"gene_groups_{grouping}.tsv", sep="\t")
        assert sorted(groups["group"].unique()) == list(range(7)), grouping
        assert {"gene_id", "gene_id_versioned", "symbol", "group"} <= set(groups.columns)
    ppi = pd.read_csv(data / "05_model_input" / "gene_groups_ppi.tsv", sep="\t").merge(
        truth[["gene_id", "module"]], on="gene_id"
    )
    in_graph = ppi[ppi["community"] >= 0]
    assert normalized_mutual_info_score(in_graph["module"], in_graph["community"]) >= 0.8
    metrics = json.loads((data / "08_reporting" / "grouping_metrics_ppi.json").read_text())
    assert metrics["n_groups"] == 7 and metrics["qd_raw"] > 0.3


def test_real_environment_reads_a_users_folder(tiny_project, tmp_path, kedro_run, monkeypatch):
    """``--env real`` with ``real_data_dir`` pointing at a user's folder (GENCODE under its own name, a PrimeKG
    ``kg.csv``): the data engineering reads it and writes nothing there. The stages after it are the same code in
    both environments; the whole analysis under ``--env real`` runs in tests/test_real_data.py, on real files."""
    user = tmp_path / "mydata"
    raw = tiny_project / "data" / "01_raw"
    for sub in ("tcga", "cohort", "ppi", "slides"):
        shutil.copytree(raw / sub, user / sub)
    (user / "annotation").mkdir()
    shutil.copy(raw / "annotation" / "gencode_genes.tsv", user / "annotation" / "gencode.v36.genes.tsv")
    project = tmp_path / "project"
    shutil.copytree(tiny_project / "conf", project / "conf")
    shutil.copy(tiny_project / "pyproject.toml", project / "pyproject.toml")
    (project / "src").mkdir()
    monkeypatch.chdir(project)
    kedro_run(project, "data_engineering", {"real_data_dir": str(user)}, env="real")
    groups = pd.read_csv(project / "data" / "05_model_input" / "gene_groups_ppi.tsv", sep="\t")
    assert groups["group"].nunique() == 7  # from the PrimeKG kg.csv this time
    assert sorted(p.name for p in user.iterdir()) == [
        "annotation",
        "cohort",
        "ppi",
        "slides",
        "tcga",
    ]  # nothing written there
    assert len(pd.read_parquet(project / "data" / "03_primary" / "patch_index.parquet")) > 0


def test_bad_input_stops_with_one_line_naming_the_file(tiny_project, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    sheet = project / "data" / "01_raw" / "cohort" / "sample_sheet.tsv"
    frame = pd.read_csv(sheet, sep="\t")
    frame.loc[1, "sample_id"] = frame.loc[0, "sample_id"]
    frame.to_csv(sheet, sep="\t", index=False)
    before = (project / "data" / "05_model_input" / "cohort_features.parquet").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipelines", "data_engineering"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"KEDRO_DISABLE_TELEMETRY": "true", "PATH": "/usr/bin:/bin", "COLUMNS": "400"},
    )
    assert result.returncode == 1
    assert f"Error: bad input: {sheet}: duplicate sample_id" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert (project / "data" / "05_model_input" / "cohort_features.parquet").read_bytes() == before


def test_slides_patch_index_and_qc(tiny_project):
    data = tiny_project / "data"
    manifest = pd.read_csv(data / "01_raw" / "slides" / "manifest.tsv", sep="\t")
    assert {"slide_id", "mouse_id", "lineage_id", "patient_id", "survival_days", "path"} <= set(manifest.columns)
    assert (manifest.groupby("lineage_id").size() >= 3).all()
    assert all((data / "01_raw" / "slides" / p).is_file() for p in manifest["path"])
    index = pd.read_parquet(data / "03_primary" / "patch_index.parquet")
    assert ["slide_id", "x", "y", "level", "size"] == list(index.columns[:5])
    assert {"brown_ratio", "lineage_id", "patient_id", "mouse_id", "split"} <= set(index.columns)
    assert set(index["lineage_id"]) == set(manifest["lineage_id"])  # tumour patches for every lineage
    assert (index["brown_ratio"] > 0.2).all() and set(index["split"]) == {"train", "test"}
    summary = pd.read_csv(data / "08_reporting" / "slide_summary.tsv", sep="\t")
    assert len(summary) == len(manifest) and (summary["status"] == "ok").all()
    assert sorted(p.stem for p in (data / "08_reporting" / "slide_qc").glob("*.png")) == sorted(manifest["slide_id"])


def test_manifest_row_with_a_missing_file_is_named(tiny_project, tmp_path):
    from gb_kedro.errors import InputDataError
    from gb_kedro.pipelines.data_engineering.nodes import tile_slides
    from tests.helpers import base_options

    manifest = pd.read_csv(tiny_project / "data" / "01_raw" / "slides" / "manifest.tsv", sep="\t").head(2)
    manifest["path"] = [str(tiny_project / "data" / "01_raw" / "slides" / manifest.at[0, "path"]), "images/gone.tif"]
    manifest.attrs["source"] = str(tmp_path / "manifest.tsv")
    slide = manifest.at[1, "slide_id"]
    import pytest

    from gb_kedro.datasets.patch_store import PatchStore

    run = base_options("data_engineering.slides", n_workers=1)
    with pytest.raises(InputDataError, match=rf"slide {slide} \(.*gone\.tif\): file not found"):
        tile_slides(manifest, base_options("data_engineering.tiling"), run, PatchStore(tmp_path / "a"))
    patches, summary = tile_slides(
        manifest, base_options("data_engineering.tiling"), {**run, "on_slide_error": "skip"}, PatchStore(tmp_path / "b")
    )
    assert summary.set_index("slide_id").at[slide, "status"] == "failed"
    assert set(patches["slide_id"]) == {manifest.at[0, "slide_id"]}

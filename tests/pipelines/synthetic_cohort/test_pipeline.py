import json

import pytest

from gb_kedro.errors import InputDataError


def test_writes_every_raw_file_with_a_marker(tiny_project):
    raw = tiny_project / "data" / "01_raw"
    marker = json.loads((raw / ".gb_kedro_synthetic.json").read_text())
    assert marker["preset"] == "tiny" and marker["generator"] == "gb_kedro.synthetic.cohort"
    expected = [
        "annotation/gencode_genes.tsv",
        "tcga/gdc_sample_sheet.tsv",
        "cohort/expression.tsv",
        "cohort/sample_sheet.tsv",
        "ppi/signalling_edges.tsv",
        "ppi/kg.csv",
        "synthetic_truth/genes.tsv",
        "synthetic_truth/drivers.tsv",
        "synthetic_truth/lineages.tsv",
        "synthetic_truth/planted_modules.gmt",
        "slides/manifest.tsv",
    ]
    for name in expected:
        assert (raw / name).is_file(), name
    star = sorted((raw / "tcga" / "star_counts").rglob("*.rna_seq.augmented_star_gene_counts.tsv"))
    assert len(star) == 40  # tiny: 4 sites x 10 samples, one folder per file as GDC downloads them
    assert star[0].read_text().startswith("# gene-model: GENCODE v36\ngene_id\tgene_name\tgene_type\tunstranded")
    assert len(list((raw / "slides" / "images").glob("*.tif"))) == 21  # tiny: 7 lineages x 3 mice


def test_refuses_to_overwrite_files_it_did_not_write(project_copy, kedro_run):
    mine = project_copy / "data" / "01_raw" / "cohort" / "my_expression.tsv"
    mine.parent.mkdir(parents=True)
    mine.write_text("gene_id\tS1\n")
    with pytest.raises(InputDataError, match="did not write .* refusing to overwrite your data"):
        kedro_run(project_copy, "synthetic_cohort", {"synthetic_cohort": {"preset": "tiny"}})
    assert mine.read_text() == "gene_id\tS1\n"
    assert not (project_copy / "data" / "01_raw" / "annotation").exists()


def test_disabled_in_the_real_environment(project_copy, kedro_run):
    with pytest.raises(InputDataError, match="generator is disabled in this environment"):
        kedro_run(project_copy, "__default__", {"real_data_dir": str(project_copy / "mine")}, env="real")

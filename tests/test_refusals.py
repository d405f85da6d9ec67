"""Data too small to mean anything is refused with one line naming the user's file (thresholds in
``data_engineering.minimums`` and ``gene_grouping.n_groups``), and errors on derived data name the user's file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gb_kedro import graph
from gb_kedro.datasets.table import TableDataset
from gb_kedro.errors import InputDataError
from gb_kedro.pipelines.data_engineering import nodes
from gb_kedro.slides.split import require_training_patches
from tests.helpers import base_options


def _frame(data, source):
    frame = pd.DataFrame(data)
    frame.attrs["source"] = source
    return frame


def _cohort(n_samples: int, n_lineages: int, genes):
    matrix = _frame(
        {"gene_id": list(genes["gene_id_versioned"][:50]), **{f"S{i}": np.arange(50.0) + i for i in range(n_samples)}},
        "my/expression.tsv",
    )
    sheet = _frame(
        {
            "sample_id": [f"S{i}" for i in range(n_samples)],
            "patient_id": "P1",
            "lineage_id": [f"L{i % n_lineages}" for i in range(n_samples)],
        },
        "my/sample_sheet.tsv",
    )
    return matrix, sheet


def _read_cohort(matrix, sheet, genes):
    history = pd.DataFrame(columns=["identifier", "kind", "gene_id"])
    minimums = base_options("data_engineering.minimums")
    return nodes.read_cohort(matrix, sheet, genes, history, base_options("data_engineering.cohort"), minimums)


def test_too_few_cohort_samples_or_lineages(tiny_genes):
    with pytest.raises(
        InputDataError,
        match=r"^my/expression\.tsv: 2 cohort RNA samples, fewer than the 4 needed \(data_engineering\.minimums\.cohort_samples\)$",
    ):
        _read_cohort(*_cohort(2, 2, tiny_genes), tiny_genes)
    with pytest.raises(InputDataError, match=r"^my/sample_sheet\.tsv: 3 lineages, fewer than the 4 needed"):
        _read_cohort(*_cohort(6, 3, tiny_genes), tiny_genes)
    parsed, samples = _read_cohort(*_cohort(4, 4, tiny_genes), tiny_genes)
    assert len(samples) == 4


def test_too_few_genes_after_harmonisation_names_both_files(tiny_genes):
    genes = tiny_genes[tiny_genes["gene_type"] == "protein_coding"]
    ids = list(genes["gene_id_versioned"][:100])
    tcga = _frame(np.ones((3, 100)), "my/tcga.tsv.gz").set_axis(ids, axis=1)
    tcga.attrs["source"] = "my/tcga.tsv.gz"
    cohort = _frame(np.ones((4, 100)), "my/expression.tsv").set_axis(ids, axis=1)
    cohort.attrs["source"] = "my/expression.tsv"
    empty = pd.DataFrame(columns=["gene", "stage", "reason"])
    history = pd.DataFrame(columns=["identifier", "kind", "gene_id"])
    with pytest.raises(
        InputDataError,
        match=r"^my/tcga\.tsv\.gz \+ my/expression\.tsv: 100 genes after harmonisation, fewer than the 200 needed",
    ):
        nodes.harmonise(
            tcga,
            cohort,
            tiny_genes,
            history,
            empty,
            base_options("data_engineering.harmonise"),
            base_options("data_engineering.minimums"),
        )


def test_a_ppi_with_fewer_communities_than_groups_is_refused(tiny_genes):
    ids = tiny_genes["gene_id"].tolist()
    # two disconnected triangles: 2 communities, 7 groups asked
    edges = _frame(
        {
            "source": [ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]],
            "target": [ids[1], ids[2], ids[0], ids[4], ids[5], ids[3]],
        },
        "my/ppi.tsv",
    )
    with pytest.raises(
        InputDataError, match=r"^my/ppi\.tsv: directed Louvain finds 2 communities .* fewer than the 7 asked"
    ):
        graph.group_genes(edges, tiny_genes, n_groups=7, resolution=1.0, seed=0, unconnected="residual")


def test_chromosomes_named_the_ncbi_way_still_give_the_groups_and_too_few_are_refused(tiny_genes):
    table = tiny_genes.copy()
    groups, sizes = graph.chromosome_groups(table, n_groups=7)
    assert sizes.shape[0] == 7
    few = _frame({"gene_id": ["a", "b", "c"], "chrom": ["chr1", "chr1", "chr2"]}, "my/genes.tsv")
    with pytest.raises(
        InputDataError,
        match=r"^my/genes\.tsv: the kept genes lie on 2 chromosome\(s\) \(chr1, chr2\), fewer than the 7",
    ):
        graph.chromosome_groups(few, n_groups=7)


def test_a_lineage_without_training_patches_is_refused():
    index = pd.DataFrame({"lineage_id": ["L1", "L1", "L2"], "split": ["train", "test", "test"]})
    lineages = pd.DataFrame({"lineage_id": ["L1", "L2", "L3"], "split": ["train", "train", "train"]})
    with pytest.raises(
        InputDataError,
        match=r"^my/manifest\.tsv: 2 lineage\(s\) without any training patch after the split: L2 \(1 tumour patches\), L3 \(0 tumour patches\)",
    ):
        require_training_patches(index, lineages, ["L1", "L2", "L3"], "my/manifest.tsv")
    held_out = lineages.assign(split=["train", "test", "test"])
    require_training_patches(index, held_out, ["L1", "L2", "L3"], "my/manifest.tsv")  # held out whole: fine


def test_an_intermediate_parquet_keeps_the_users_file_as_its_source(tmp_path):
    frame = _frame({"a": [1.0]}, "/data/mine/expression.tsv")
    dataset = TableDataset(str(tmp_path / "cohort_expression.parquet"))
    dataset.save(frame)
    assert dataset.load().attrs["source"] == "/data/mine/expression.tsv"
    plain = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1.0]}).to_parquet(plain)
    assert TableDataset(str(plain)).load().attrs["source"] == str(plain)

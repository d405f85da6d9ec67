"""Every parameter file of conf/base loads into its typed config; unknown and missing keys stop with one
line naming the key and the file."""

from __future__ import annotations

import re

import pytest

from gb_kedro.config import (
    BASELINE_ROWS,
    ROOTS,
    CohortReadConfig,
    MultimodalConfig,
    PatchesConfig,
    PipelineShape,
    PPIConfig,
    ReportingConfig,
    RNAVariant,
    SplitConfig,
    Table1Row,
    TcgaConfig,
    TilingOptions,
    check_parameters,
)
from gb_kedro.errors import InputDataError
from gb_kedro.synthetic.cohort import SyntheticConfig
from tests.helpers import base_options, base_parameters

SHAPE = PipelineShape.of(base_parameters())
# Every parameter tree and the config class that reads it: the configs' own table (ROOTS), then the trees of the
# pipeline's shape (Table 1 rows, baseline rows, RNA groupings) and the generator's.
CONFIGS = [(cls, cls.KEY) for cls in ROOTS]
CONFIGS += [(Table1Row, f"{row}.table1_row") for row in SHAPE.rows]
CONFIGS += [(cls, f"{row}.table1_row") for row, cls in BASELINE_ROWS.items()]
CONFIGS += [(RNAVariant, f"{grouping}.rna_variant") for grouping in SHAPE.groupings]
CONFIGS += [(SyntheticConfig, "synthetic_cohort")]


def test_every_parameter_tree_has_a_typed_config():
    assert set(base_parameters()) == {key.split(".")[0] for _, key in CONFIGS}
    data_engineering = {key.split(".")[1] for _, key in CONFIGS if key.startswith("data_engineering.")}
    assert set(base_parameters()["data_engineering"]) == data_engineering
    assert check_parameters(base_parameters(), SHAPE) == SHAPE


def test_a_run_may_ask_for_fewer_retrainings_than_the_pipelines_hold_not_more():
    params = base_parameters()
    fewer = {**params, "multimodal": {**params["multimodal"], "retrainings": {"seeds": 1, "permutations": 0}}}
    assert check_parameters(fewer, SHAPE).seeds == 1
    more = {**params, "multimodal": {**params["multimodal"], "retrainings": {"seeds": 9, "permutations": 0}}}
    with pytest.raises(InputDataError, match=r"multimodal\.retrainings\.seeds is 9, more than the 3 the pipelines"):
        check_parameters(more, SHAPE)
    rows = {**params["multimodal"]["table1"]["rows"], "extra_row": "ppi"}
    other = {**params, "multimodal": {**params["multimodal"], "table1": {"rows": rows, "model_row": "ppi_no_recon"}}}
    with pytest.raises(InputDataError, match=r"change the pipeline's shape \(rows"):
        check_parameters(other, SHAPE)


def test_the_paired_reference_is_a_table1_row():
    params = base_parameters()
    evaluation = {**params["multimodal"]["evaluation"], "paired_reference": "no_such_row"}
    bad = {**params, "multimodal": {**params["multimodal"], "evaluation": evaluation}}
    with pytest.raises(InputDataError, match=r"paired_reference' is 'no_such_row'; allowed: .*morphometry_classifier"):
        check_parameters(bad, SHAPE)


def test_table1_rows_use_rna_encoders_that_are_trained():
    params = base_parameters()
    rna = {**params["rna_encoding"], "groupings": ["ppi"]}
    with pytest.raises(InputDataError, match=r"row 'chromosome_no_recon' uses the chromosome RNA encoder"):
        PipelineShape.of({**params, "rna_encoding": rna})


@pytest.mark.parametrize(
    ("cls", "key"),
    CONFIGS,
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_conf_base_loads_into_the_typed_config(cls, key):
    cfg = cls.from_dict(base_options(key))
    assert cfg.to_dict().keys() == base_options(key).keys()


def test_unknown_key_is_named_with_its_file():
    with pytest.raises(
        InputDataError, match=r"parameters_multimodal\.yml: unknown parameter 'multimodal\.train\.learning_rate'"
    ):
        MultimodalConfig.from_dict(
            {**base_options("multimodal"), "train": {**base_options("multimodal.train"), "learning_rate": 0.1}}
        )


def test_missing_key_is_named_with_its_file():
    options = base_options("patches")
    options["augment"] = {k: v for k, v in options["augment"].items() if k != "hed_sigma"}
    with pytest.raises(InputDataError, match=r"parameters\.yml: missing parameter 'patches\.augment\.hed_sigma'"):
        PatchesConfig.from_dict(options)


def test_enumerated_values_list_the_allowed_ones():
    with pytest.raises(InputDataError, match=r"'split\.mode' is 'mice'; allowed: all, patch, mouse, lineage"):
        SplitConfig.from_dict(base_options("split", mode="mice"))
    with pytest.raises(InputDataError, match=r"allowed: cohort_mean, zero"):
        ReportingConfig.from_dict(base_options("reporting", gene_baseline="median"))


def test_nested_configs_are_typed():
    cfg = PatchesConfig.from_dict(base_options("patches"))
    assert cfg.augment.hed_sigma == base_options("patches.augment")["hed_sigma"] and cfg.geometry == (256, 128)
    presets = SyntheticConfig.from_dict(base_options("synthetic_cohort")).presets
    assert set(presets) == {"tiny", "demo", "paper"} and presets["demo"].n_lineages == 12


@pytest.mark.parametrize(
    ("cls", "key", "field", "bad", "allowed"),
    [
        (PPIConfig, "data_engineering.ppi", "format", "string_db", "auto, primekg, edge_list"),
        (CohortReadConfig, "data_engineering.cohort", "orientation", "rows", "auto, genes_x_samples, samples_x_genes"),
        (TcgaConfig, "data_engineering.tcga", "value_scale", "log10", "linear, log2p1, log1p"),
        (TilingOptions, "data_engineering.tiling", "prefilter", "otsu", "none, tissue, brown"),
        (MultimodalConfig, "multimodal", "device", "gpu", "auto, cpu, cuda, cuda:<index>"),
    ],
)
def test_every_enumerated_parameter_lists_its_allowed_values(cls, key, field, bad, allowed):
    with pytest.raises(InputDataError, match=rf"'{key}\.{field}' is '{bad}'; allowed: {re.escape(allowed)}"):
        cls.from_dict(base_options(key, **{field: bad}))
    assert cls.from_dict(base_options(key, **({"device": "cuda:1"} if field == "device" else {})))


def test_gene_set_files_can_travel_in_one_run_time_parameter():
    """``--params`` splits on commas, so several GMT files travel as one string separated by ``;``."""
    from gb_kedro.config import EnrichmentConfig

    cfg = EnrichmentConfig.from_dict(base_options("reporting.enrichment", gmt_paths="a.gmt; b.gmt"))
    assert cfg.paths == ["a.gmt", "b.gmt"]
    assert EnrichmentConfig.from_dict(base_options("reporting.enrichment", gmt_paths=["c.gmt"])).paths == ["c.gmt"]

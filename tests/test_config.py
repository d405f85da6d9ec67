"""Every parameter file of conf/base loads into its typed config; unknown and missing keys stop with one
line naming the key and the file."""

from __future__ import annotations

import re

import pytest

from gb_kedro.config import (
    CohortReadConfig,
    MultimodalConfig,
    PPIConfig,
    ReportingConfig,
    SplitConfig,
    TcgaConfig,
    WSIEncodingConfig,
)
from gb_kedro.errors import InputDataError
from gb_kedro.hooks import CONFIGS as HOOK_CONFIGS
from gb_kedro.slides.tiling import TilingOptions
from gb_kedro.synthetic.cohort import SyntheticConfig
from tests.helpers import base_options, base_parameters

# Every top-level parameter tree and the config class(es) that read it: the hooks' table, with dotted keys.
CONFIGS = {top: [(cls, ".".join((top, *path))) for cls, path in pairs] for top, pairs in HOOK_CONFIGS.items()}
CONFIGS["synthetic_cohort"] = [(SyntheticConfig, "synthetic_cohort")]


def test_every_parameter_tree_has_a_typed_config():
    assert set(base_parameters()) == set(CONFIGS)
    data_engineering = {key.split(".")[1] for cls, key in CONFIGS["data_engineering"]}
    assert set(base_parameters()["data_engineering"]) == data_engineering


@pytest.mark.parametrize(
    ("cls", "key"),
    [pair for pairs in CONFIGS.values() for pair in pairs],
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
    options = base_options("wsi_encoding")
    options["augment"] = {k: v for k, v in options["augment"].items() if k != "hed_sigma"}
    with pytest.raises(
        InputDataError, match=r"parameters_wsi_encoding\.yml: missing parameter 'wsi_encoding\.augment\.hed_sigma'"
    ):
        WSIEncodingConfig.from_dict(options)


def test_enumerated_values_list_the_allowed_ones():
    with pytest.raises(InputDataError, match=r"'split\.mode' is 'mice'; allowed: all, patch, mouse, lineage"):
        SplitConfig.from_dict(base_options("split", mode="mice"))
    with pytest.raises(InputDataError, match=r"allowed: cohort_mean, zero"):
        ReportingConfig.from_dict(base_options("reporting", gene_baseline="median"))


def test_nested_configs_are_typed():
    cfg = WSIEncodingConfig.from_dict(base_options("wsi_encoding"))
    assert cfg.augment.hed_sigma == base_options("wsi_encoding.augment")["hed_sigma"] and cfg.data.geometry == (
        256,
        128,
    )
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

import pandas as pd
import pytest

from gb_kedro.config import SplitConfig
from gb_kedro.slides.split import assign_split
from tests.helpers import base_config


@pytest.fixture()
def index():
    rows = []
    for p in range(3):
        for lin in range(3):
            for m in range(3):
                for k in range(10):
                    rows.append(
                        {
                            "slide_id": f"S{p}{lin}{m}",
                            "mouse_id": f"M{p}{lin}{m}",
                            "lineage_id": f"L{p}{lin}",
                            "patient_id": f"P{p}",
                            "x": k,
                        }
                    )
    return pd.DataFrame(rows)


def test_patch_split_is_even_across_lineages_and_slides(index):
    out, lineages = assign_split(index, base_config(SplitConfig, "split", mode="patch", test_fraction=0.2, seed=1))
    test = out[out["split"] == "test"]
    assert test.groupby("lineage_id").size().nunique() == 1  # the same number in every lineage
    assert test.groupby("lineage_id")["slide_id"].nunique().min() == 3  # spread over the lineage's slides
    assert (lineages["split"] == "train").all()


def test_mouse_split_holds_out_whole_mice(index):
    out, _ = assign_split(index, base_config(SplitConfig, "split", mode="mouse", test_mice_per_lineage=1, seed=1))
    per_mouse = out.groupby("mouse_id")["split"].nunique()
    assert (per_mouse == 1).all()  # never a mouse on both sides
    held = out[out["split"] == "test"].groupby("lineage_id")["mouse_id"].nunique()
    assert len(held) == 9 and (held == 1).all()


def test_lineage_split_holds_out_whole_lineages_from_patients_that_keep_one(index):
    out, lineages = assign_split(index, base_config(SplitConfig, "split", mode="lineage", n_test_lineages=2, seed=1))
    held = lineages.loc[lineages["split"] == "test", "lineage_id"]
    assert len(held) == 2
    assert set(out.loc[out["split"] == "test", "lineage_id"]) == set(held)
    assert lineages[lineages["split"] == "test"]["patient_id"].nunique() == 2
    for patient in lineages.loc[lineages["split"] == "test", "patient_id"]:
        assert (lineages[(lineages["patient_id"] == patient)]["split"] == "train").any()


def test_unknown_mode(index):
    with pytest.raises(ValueError, match="split.mode"):
        base_config(SplitConfig, "split", mode="slide")

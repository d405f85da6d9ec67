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


def _preset_index(preset: dict, patches_per_slide: int = 6) -> pd.DataFrame:
    """A patch index shaped like a synthetic-cohort preset (patients, lineages, mice per lineage)."""
    rows = []
    for lin in range(preset["n_lineages"]):
        patient = lin % preset["n_patients"]
        for m in range(preset["mice_per_lineage"]):
            for k in range(patches_per_slide):
                rows.append(
                    {
                        "slide_id": f"S{lin}_{m}",
                        "mouse_id": f"M{lin}_{m}",
                        "lineage_id": f"L{lin:02d}",
                        "patient_id": f"P{patient}",
                        "x": k,
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("preset", ["tiny", "demo", "paper"])
def test_three_held_out_sets_never_leak_into_training(preset):
    """Held-out lineages (RNA, mice, patches) and held-out mice never reach training, for every preset."""
    from gb_kedro.multimodal import PairedCohort, training_pairs
    from tests.helpers import base_options

    shape = base_options("synthetic_cohort.presets")[preset]
    index, lineages = assign_split(_preset_index(shape), base_config(SplitConfig, "split", mode="all", seed=3))
    train, test = index[index["split"] == "train"], index[index["split"] == "test"]
    held_lineages = set(lineages.loc[lineages["split"] == "test", "lineage_id"])
    assert len(held_lineages) >= min(3, shape["n_lineages"] - 3) and len(held_lineages) >= 0.2 * shape["n_lineages"] - 1
    assert not held_lineages & set(train["lineage_id"])  # no patch of a held-out lineage is trained on
    assert set(test.loc[test["held_out"] == "lineage", "lineage_id"]) == held_lineages
    held_mice = set(test.loc[test["held_out"] == "mouse", "mouse_id"])
    assert held_mice and not held_mice & set(train["mouse_id"])  # nor a patch of a held-out mouse
    seen = set(index["lineage_id"]) - held_lineages
    assert set(test.loc[test["held_out"] == "mouse", "lineage_id"]) == seen  # one unseen mouse per seen lineage
    assert set(test.loc[test["held_out"] == "patch", "slide_id"]) <= set(train["slide_id"])  # patches of seen slides
    assert (index["held_out"] == "").eq(index["split"] == "train").all()
    # the multimodal model's training pairs: only seen lineages, so no held-out lineage's RNA sample
    samples = pd.DataFrame(
        {"sample_id": sorted(set(index["lineage_id"])), "lineage_id": sorted(set(index["lineage_id"]))}
    )
    samples["patient_id"] = samples["lineage_id"].map(dict(zip(index["lineage_id"], index["patient_id"], strict=False)))
    features = pd.DataFrame(1.0, index=samples["sample_id"], columns=["g1", "g2"])
    rows, trained_lineages, _, rna_of_label = training_pairs(PairedCohort(index, None, features, samples), ["g1", "g2"])
    assert not set(trained_lineages) & held_lineages and not index.loc[rows, "held_out"].ne("").any()
    assert len(rna_of_label) == len(seen)


def test_lineages_held_out_leave_enough_to_train(index):
    cfg = base_config(SplitConfig, "split", mode="all", n_test_lineages=8, seed=0)
    _, lineages = assign_split(index, cfg)
    assert (lineages["split"] == "train").sum() >= cfg.min_train_lineages

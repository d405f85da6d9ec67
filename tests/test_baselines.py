"""The strong baseline row, the expression bridge, the slide-paired comparison and the image axis probe."""

import itertools

import numpy as np
import pandas as pd
import pytest

from gb_kedro import baselines, evaluation
from gb_kedro import multimodal as mm
from gb_kedro.config import BridgeRow, ImageAxisProbeConfig, LineageClassifierConfig
from gb_kedro.reporting import image_axis_probe
from gb_kedro.slides.morphometry import ALL_FEATURES
from tests.helpers import base_options

CLASSIFIER = LineageClassifierConfig.from_dict(base_options("lineage_classifier"))


def _cohort(n_lineages=8, n_test_lineages=2, mice=3, patches=12, genes=60, driver_genes=6, seed=0):
    """Lineages with distinct 3-level codes on 3 axes; the patch features read the code (+ noise); the first
    ``driver_genes`` genes follow the code, the rest are noise of the same spread. The last ``n_test_lineages``
    lineages are held out whole; the last mouse of every other lineage is an unseen mouse."""
    rng = np.random.default_rng(seed)
    combos = np.array(list(itertools.product(range(3), repeat=3)), float)  # 3 axes x 3 levels: 27 distinct codes
    code = combos[rng.choice(len(combos), n_lineages, replace=False)]
    lineages = [f"L{i}" for i in range(n_lineages)]
    expression = rng.normal(size=(n_lineages, genes))
    expression[:, :driver_genes] = np.repeat(code, driver_genes // 3, axis=1) * 3 + rng.normal(
        0, 0.3, (n_lineages, driver_genes)
    )
    rows = []
    for i, lab in enumerate(lineages):
        for m in range(mice):
            held = "lineage" if i >= n_lineages - n_test_lineages else ("mouse" if m == mice - 1 else "")
            for p in range(patches):
                rows.append(
                    {
                        "slide_id": f"{lab}-m{m}",
                        "x": p,
                        "y": 0,
                        "lineage_id": lab,
                        "patient_id": f"P{i // 2}",
                        "mouse_id": f"{lab}-m{m}",
                        "split": "train" if held == "" else "test",
                        "held_out": held,
                    }
                )
    index = pd.DataFrame(rows)
    lineage_code = code[index["lineage_id"].str[1:].astype(int).to_numpy()]
    values = np.concatenate(
        [lineage_code + rng.normal(0, 0.2, lineage_code.shape), rng.normal(size=(len(index), 5))], 1
    )
    samples = pd.DataFrame(
        {
            "sample_id": [f"S{i}" for i in range(n_lineages)],
            "lineage_id": lineages,
            "patient_id": [f"P{i // 2}" for i in range(n_lineages)],
        }
    )
    features = pd.DataFrame(expression, index=samples["sample_id"], columns=[f"G{g}" for g in range(genes)])
    truth = pd.DataFrame(
        {"lineage_id": lineages, "patient_id": samples["patient_id"], **{f"axis{a}": code[:, a] for a in range(3)}}
    )
    return mm.PairedCohort(index, None, features, samples), values, truth


def test_classifier_row_never_sees_held_out_patches(monkeypatch):
    data, values, _ = _cohort()
    ids = np.arange(len(values), dtype=float)[:, None]  # a row id travels as an extra feature column
    seen = {}
    real = mm.fit_lineage_classifier

    def spy(x, lineage, mouse, cfg):
        seen["ids"] = x[:, 0].astype(int)
        return real(x, lineage, mouse, cfg)

    monkeypatch.setattr(mm, "fit_lineage_classifier", spy)
    mm.classifier_retrieval(np.hstack([ids, values]), data, CLASSIFIER)
    assert np.array_equal(np.sort(seen["ids"]), np.flatnonzero(data.patch_index["split"] == "train"))


def test_classifier_row_answers_the_predicted_lineage_and_ranks_unseen_ones_below():
    data, values, _ = _cohort()
    sim, fitted, choice, samples, index, test = mm.classifier_retrieval(values, data, CLASSIFIER)
    assert choice["inverse_penalty"] in CLASSIFIER.inverse_penalties and len(choice["cv_accuracy"]) == len(
        CLASSIFIER.inverse_penalties
    )
    proba = fitted.predict_proba(values[test.index])
    top = samples["lineage_id"].to_numpy()[sim.argmax(1)]
    assert np.array_equal(top, fitted.classes_[proba.argmax(1)])  # eq. 9's top-1 is the classifier's lineage
    unseen = ~samples["lineage_id"].isin(fitted.classes_).to_numpy()
    assert sim[:, unseen].max() <= 0.0 <= sim[:, ~unseen].min()  # unseen lineages below every known one
    mouse = (test["held_out"] == "mouse").to_numpy()
    assert (top[mouse] == test.loc[mouse, "lineage_id"].to_numpy()).mean() > 0.8


def test_expression_bridge_names_unseen_lineages_from_genes_that_follow_morphology():
    data, values, _ = _cohort(n_lineages=24, n_test_lineages=4)
    row = BridgeRow.from_dict({**base_options("expression_bridge.table1_row"), "n_genes": [3, 6, 30]})
    sim, record, samples, index, test = mm.bridge_retrieval(values, data, row)
    assert set(record["inner_accuracy"]) == {3, 6, 30}
    r2 = np.nan_to_num(record["r2"], nan=-np.inf)
    assert set(np.argsort(-r2)[:6]) == set(range(6))  # the genes that follow the code rank first
    assert set(record["genes"]) == set(range(6))  # and the inner folds keep just those
    rows = (test["held_out"] == "lineage").to_numpy()
    own = samples["lineage_id"].isin(test.loc[rows, "lineage_id"]).to_numpy()
    answer = samples["lineage_id"].to_numpy()[own][sim[np.ix_(rows, own)].argmax(1)]
    assert (answer == test.loc[rows, "lineage_id"].to_numpy()).mean() > 0.6  # chance 0.25


def test_expression_bridge_fits_on_training_lineages_only(monkeypatch):
    data, values, _ = _cohort(n_lineages=12, n_test_lineages=4)
    held = (data.patch_index["split"] == "test").to_numpy()
    values = np.where(held[:, None], np.nan, values)  # a fit that saw a held-out patch would see NaN
    fitted_rows = []
    real = baselines._bridge_fit

    def spy(train_x, *args):
        assert np.isfinite(train_x).all()
        fitted_rows.append(len(train_x))
        return real(train_x, *args)

    monkeypatch.setattr(baselines, "_bridge_fit", spy)
    row = BridgeRow.from_dict(base_options("expression_bridge.table1_row"))
    with pytest.raises(ValueError, match="NaN"):  # only the final prediction reads the held-out patches
        mm.bridge_retrieval(values, data, row)
    assert max(fitted_rows) == int((~held).sum()) and len(fitted_rows) > len(row.n_genes)  # inner folds too


def test_paired_difference_resamples_the_same_slides():
    slides = np.repeat(["s1", "s2", "s3", "s4"], 5)
    same = np.tile([True, False, True, True, False], 4)
    equal = evaluation.paired_difference(same, same, slides, 500, 0)
    assert equal["difference"] == 0 and equal["difference_ci_low"] == 0 == equal["difference_ci_high"]
    better = evaluation.paired_difference(np.ones(20, bool), same, slides, 500, 0)
    assert better["difference"] == pytest.approx(0.4) and better["difference_ci_low"] == pytest.approx(0.4)
    assert better["share_at_least_as_accurate"] == 1.0 and better["slides"] == 4 and better["patches"] == 20


def test_paired_rows_align_patches_and_skip_untrained_rows():
    base = pd.DataFrame(
        {"slide_id": ["a", "a", "b", "b"], "x": [0, 1, 0, 1], "y": 0, "lineage_id": ["L1", "L1", "L2", "L2"]}
    ).assign(held_out="mouse")
    reference = base.assign(predicted_lineage=["L1", "L2", "L2", "L1"])
    row = base.iloc[::-1].assign(predicted_lineage=["L2", "L2", "L1", "L1"])  # another order: L2 L2 | L1 L1 reversed
    table = evaluation.paired_rows(
        {"ref": reference, "row": row, "untrained": pd.DataFrame(columns=["slide_id"])}, "ref", 200, 0
    )
    assert list(table["row"]) == ["row"] and table["accuracy"].iloc[0] == 1.0
    assert table["reference_accuracy"].iloc[0] == 0.5 and table["difference"].iloc[0] == 0.5
    assert "Unseen mice" in evaluation.paired_markdown(table)


def test_image_axis_probe_reads_a_planted_axis_and_not_a_shuffled_one():
    data, values, truth = _cohort(n_lineages=12, n_test_lineages=4)
    cfg = ImageAxisProbeConfig.from_dict(base_options("reporting.image_axis_probe"))
    reps = {"reads_axis0": values[:, [0]], "noise": values[:, -3:]}
    table = image_axis_probe.image_axis_probe(reps, data.patch_index, truth, cfg, 0)
    planted = table[(table["axis"] == "axis0") & (table["representation"] == "reads_axis0")]
    assert (planted["accuracy"] > 0.85).all()
    assert set(planted["held_out"]) == {"mouse", "lineage", "mouse_slides", "lineage_slides"}
    per_slide = planted.set_index("held_out")["slides"]
    assert per_slide["lineage_slides"] == 4 * 3 and per_slide["mouse_slides"] == 8  # 4 unseen lineages x 3 mice
    noise = table[(table["axis"] == "axis0") & (table["representation"] == "noise")]
    assert (noise["accuracy"] < 0.75).all()
    shuffled = truth.assign(axis0=np.random.default_rng(3).permutation(truth["axis0"].to_numpy()))
    while (shuffled["axis0"] == truth["axis0"]).mean() > 0.5:
        shuffled["axis0"] = np.random.default_rng(len(shuffled)).permutation(shuffled["axis0"].to_numpy())
    moved = image_axis_probe.image_axis_probe(reps, data.patch_index, shuffled, cfg, 0)
    read = moved[(moved["axis"] == "axis0") & (moved["representation"] == "reads_axis0")]
    assert (read["accuracy"] < planted["accuracy"].to_numpy() - 0.2).any()
    wide = image_axis_probe.wide(table, "lineage")
    assert list(wide.index)[-1].startswith("chance") and wide.shape == (3, 3)


def test_image_axis_probe_fits_on_training_patches_only(monkeypatch):
    data, values, truth = _cohort()
    cfg = ImageAxisProbeConfig.from_dict(base_options("reporting.image_axis_probe"))
    masks = []
    real = image_axis_probe.probe

    def spy(x, levels, train, test, cfg):
        masks.append((train.copy(), test.copy()))
        return real(x, levels, train, test, cfg)

    real_slides = image_axis_probe.probe_slides

    def spy_slides(x, levels, slides, train, test, cfg):
        masks.append((train.copy(), test.copy()))
        return real_slides(x, levels, slides, train, test, cfg)

    monkeypatch.setattr(image_axis_probe, "probe", spy)
    monkeypatch.setattr(image_axis_probe, "probe_slides", spy_slides)
    image_axis_probe.image_axis_probe({"x": values}, data.patch_index, truth, cfg, 0)
    held = (data.patch_index["held_out"] != "").to_numpy()
    assert len(masks) == 3 * 4  # 3 axes x (2 patch sets + 2 slide sets)
    assert all(not (train & held).any() and (test <= held).all() for train, test in masks)


def test_the_per_slide_probe_scores_each_slide_by_the_mean_of_its_patches():
    """A slide-scale axis hidden under patch noise: one patch reads it poorly, the mean of a slide's patches well;
    a test slide counts once, whatever its number of patches."""
    rng = np.random.default_rng(0)
    slides = np.repeat(np.arange(40), 100)
    level = slides % 2
    x = (level + rng.normal(0, 1.5, len(slides)))[:, None]
    train, test = slides < 30, slides >= 30
    cfg = ImageAxisProbeConfig.from_dict(base_options("reporting.image_axis_probe"))
    patch_correct, _ = image_axis_probe.probe(x, level, train, test, cfg)
    slide_correct, chance, scored = image_axis_probe.probe_slides(x, level, slides, train, test, cfg)
    assert patch_correct.mean() < 0.75 and slide_correct.all() and list(scored) == list(range(30, 40)) and chance == 0.5


def test_an_interval_resamples_whole_clusters():
    """Two lineages of 100 patches, one read and one missed: over patches the accuracy 0.5 looks certain, over
    lineages it is anything from 0 to 1."""
    correct = np.repeat([1.0, 0.0], 100)
    assert evaluation.cluster_interval(correct, np.repeat(["a", "b"], 100), 2000, 0) == (0.0, 1.0)
    low, high = evaluation.cluster_interval(correct, np.arange(200), 2000, 0)
    assert 0.4 < low < 0.5 < high < 0.6
    assert evaluation.cluster_interval(correct, np.arange(200), 500, 1) == evaluation.cluster_interval(
        correct, np.arange(200), 500, 1
    )


def test_the_image_axis_probe_intervals_resample_lineages_on_unseen_lineages_and_slides_on_unseen_mice():
    data, values, truth = _cohort(n_lineages=12, n_test_lineages=4)
    cfg = ImageAxisProbeConfig.from_dict(base_options("reporting.image_axis_probe"))
    noisy = values[:, [0]] + np.random.default_rng(0).normal(0, 0.8, (len(values), 1))
    table = image_axis_probe.image_axis_probe({"noisy": noisy}, data.patch_index, truth, cfg, 0)
    units = table.drop_duplicates("held_out").set_index("held_out")["bootstrap_unit"]
    assert units.to_dict() == {
        "mouse": "slide",
        "lineage": "lineage",
        "mouse_slides": "slide",
        "lineage_slides": "lineage",
    }
    assert ((table["ci_low"] <= table["accuracy"]) & (table["accuracy"] <= table["ci_high"])).all()
    index = data.patch_index.reset_index(drop=True)
    unseen = (index["held_out"] == "lineage").to_numpy()
    row = table[(table["held_out"] == "lineage") & (table["axis"] == "axis0")].iloc[0]
    correct, _ = image_axis_probe.probe(
        noisy,
        index["lineage_id"].map(truth.set_index("lineage_id")["axis0"]).to_numpy(),
        (index["split"] == "train").to_numpy(),
        unseen,
        cfg,
    )
    expected = evaluation.cluster_interval(correct, index.loc[unseen, "lineage_id"], cfg.n_boot, 0)
    assert (row["ci_low"], row["ci_high"]) == expected
    cells = image_axis_probe.wide_intervals(table, "lineage")
    assert cells.loc["noisy", "axis0"] == f"{row['accuracy']:.2f} ({row['ci_low']:.2f}-{row['ci_high']:.2f})"


def test_pooled_runs_count_a_lineage_once_and_weigh_every_answer():
    """Several runs' probe answers scored together: a run repeated adds no confidence (its lineages are the same
    units), a second lineage split adds its lineages; the pooled accuracy weighs every answer."""
    data, values, truth = _cohort(n_lineages=12, n_test_lineages=4)
    cfg = ImageAxisProbeConfig.from_dict(base_options("reporting.image_axis_probe"))
    noisy = {"noisy": values[:, [0]] + np.random.default_rng(0).normal(0, 0.8, (len(values), 1))}
    index = data.patch_index.reset_index(drop=True)
    first = image_axis_probe.answers(noisy, index, truth, cfg)
    single = image_axis_probe.image_axis_probe(noisy, index, truth, cfg, 0).set_index(["held_out", "axis"])
    twice = image_axis_probe.pooled([first, first], cfg, 0).set_index(["held_out", "axis"])
    assert len(twice) == len(single) and (twice["runs"] == 2).all() and (twice["run_min"] == twice["run_max"]).all()
    for col in ("accuracy", "ci_low", "ci_high", "bootstrap_unit"):
        assert twice[col].to_dict() == single.loc[twice.index, col].to_dict()
    assert twice.loc[("lineage", "axis0"), "units"] == 4 and twice.loc[("mouse_slides", "axis0"), "units"] == 8
    # another split: L0-L3 held out whole, L8-L11 trained on (their last mouse unseen)
    number = index["lineage_id"].str[1:].astype(int)
    other = index.assign(
        held_out=np.where(number < 4, "lineage", np.where(index["slide_id"].str.endswith("m2"), "mouse", ""))
    )
    other["split"] = np.where(other["held_out"] == "", "train", "test")
    second = image_axis_probe.answers(noisy, other, truth, cfg)
    both = image_axis_probe.pooled([first, second], cfg, 0).set_index(["held_out", "axis"])
    row = both.loc[("lineage", "axis0")]
    a = next(x["correct"] for x in first if x["held_out"] == "lineage" and x["axis"] == "axis0")
    b = next(x["correct"] for x in second if x["held_out"] == "lineage" and x["axis"] == "axis0")
    assert row["units"] == 8 and row["accuracy"] == pytest.approx(np.concatenate([a, b]).mean())
    assert row["run_mean"] == pytest.approx((a.mean() + b.mean()) / 2) and row["run_min"] == min(a.mean(), b.mean())


def test_richer_features_are_a_superset_of_the_baseline_features():
    from gb_kedro.slides.morphometry import FEATURES

    assert ALL_FEATURES[: len(FEATURES)] == FEATURES and len(set(ALL_FEATURES)) == len(ALL_FEATURES) == 40

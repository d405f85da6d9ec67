"""The morphology-link table, the scoring of gene rankings against planted truth, Table 2's seed stability
and the RNA axis probe, on constructed cases with known answers."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from gb_kedro.config import ReportingConfig, base_subtree
from gb_kedro.reporting import axis_probe, gene_scoring, morphology_link, seeds

CFG = ReportingConfig.from_dict(base_subtree("reporting"))


def link_cfg(**overrides):
    return dataclasses.replace(CFG.morphology_link, **overrides)


def test_folds_hold_each_group_out_of_its_own_training_rows():
    groups = np.array(["P1", "P1", "P2", "P3", "P3", "P3"])
    folds = morphology_link.folds(groups)
    assert len(folds) == 3
    for train, test in folds:
        assert set(groups[test]) == {groups[test][0]} and groups[test][0] not in set(groups[train])
        assert sorted([*train, *test]) == list(range(6))


@pytest.mark.parametrize("groups", [np.arange(12), np.repeat(np.arange(4), 3)])
def test_out_of_lineage_prediction_never_uses_the_held_out_lineage(groups):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 8)), rng.normal(size=(12, 5))
    pred = morphology_link.out_of_group_predictions(x, y, groups, CFG.morphology_link.alphas, 3)
    for g in np.unique(groups):
        changed = y.copy()
        changed[groups == g] += 100.0  # the held-out group's own expression, wildly different
        again = morphology_link.out_of_group_predictions(x, changed, groups, CFG.morphology_link.alphas, 3)
        np.testing.assert_allclose(again[groups == g], pred[groups == g], atol=1e-9)
        assert not np.allclose(again[groups != g], pred[groups != g])  # the others did see it


@pytest.mark.parametrize("n_components", [None, 4])
def test_r2_of_a_linear_gene_is_about_one_and_of_a_noise_gene_about_zero(n_components):
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(40, 3))  # 3 morphology axes seen through 6 correlated representation dims
    x = latent @ rng.normal(size=(3, 6)) + rng.normal(0, 0.05, (40, 6))
    linear = latent @ np.array([1.0, -0.5, 0.3]) + rng.normal(0, 0.05, 40)
    noise = rng.normal(size=40)
    y = morphology_link.zscore(np.column_stack([linear, noise]))
    pred = morphology_link.out_of_group_predictions(x, y, np.arange(40), CFG.morphology_link.alphas, n_components)
    r2 = morphology_link.r2_scores(y, pred)
    assert r2[0] > 0.95 and -0.3 < r2[1] < 0.1
    rho = morphology_link.spearman_scores(y, pred)
    # a noise gene's out-of-lineage prediction leans on the training mean, which moves against the held-out value:
    # its r is <= 0 (never spuriously positive)
    assert rho[0] > 0.95 and rho[1] < 0.3


def test_combined_representation_gives_each_block_the_same_weight():
    """Concatenating a wide block (60 noise columns) with a narrow one (2 columns that carry the gene) weights
    the blocks equally after standardisation (one block alone: weights 1); the narrow block's signal then
    survives the ridge penalty, which it does not when every column counts the same."""
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.normal(size=(30, 60)))
    narrow = pd.DataFrame(rng.normal(size=(30, 2)), columns=["m0", "m1"])
    frame, weights = morphology_link.representation("wsi+morphometry", wide, narrow)
    assert frame.shape == (30, 62) and np.allclose((weights**2)[:60].sum(), (weights**2)[60:].sum())
    assert np.isclose((weights**2).sum(), 62)
    assert np.allclose(morphology_link.representation("morphometry", wide, narrow)[1], 1.0)
    y = (narrow["m0"] - narrow["m1"]).to_numpy()[:, None] + 0.3 * rng.normal(size=(30, 1))
    x, alphas = frame.to_numpy(), CFG.morphology_link.alphas
    weighted = morphology_link.r2_scores(
        y, morphology_link.out_of_group_predictions(x, y, np.arange(30), alphas, None, weights)
    )
    flat = morphology_link.r2_scores(y, morphology_link.out_of_group_predictions(x, y, np.arange(30), alphas, None))
    assert weighted[0] > flat[0] + 0.05 and weighted[0] > 0.5


def test_permutation_p_and_bh_q_separate_a_linear_gene_from_noise_genes():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 4))
    y = np.column_stack([x[:, 0] + rng.normal(0, 0.2, 30), rng.normal(size=(30, 9))])
    scores = morphology_link.link_scores(x, y, np.arange(30), link_cfg(n_permutations=20, n_components=None), seed=0)
    assert len(scores["null"]) == 20 * 10
    assert scores["p_value"][0] == pytest.approx(1 / 201) and scores["q_value"][0] < 0.05
    assert (scores["q_value"][1:] > 0.05).all() and (scores["q_value"] >= scores["p_value"] - 1e-12).all()
    unpermuted = morphology_link.link_scores(x, y, np.arange(30), link_cfg(n_permutations=0), seed=0)
    assert np.isnan(unpermuted["p_value"]).all() and unpermuted["r2"][0] > 0.8  # no null: R^2 alone


def test_link_table_ranks_the_model_genes_with_ids_symbols_and_groups():
    rng = np.random.default_rng(3)
    lineages = [f"P{i // 3}-L{i % 3}" for i in range(12)]
    shape = rng.normal(size=12)

    def patches(columns):
        rows = np.repeat(np.arange(12), 5)
        frame = pd.DataFrame(rng.normal(size=(60, len(columns))) * 0.1, columns=columns)
        frame.iloc[:, 0] += shape[rows]
        return frame.assign(lineage_id=[lineages[r] for r in rows], slide_id="s", x=0, y=0)

    genes = ["ENSG1", "ENSG2", "ENSG3"]
    features = pd.DataFrame(
        np.column_stack([shape, rng.normal(size=12), rng.normal(size=12)]),
        index=[f"S-{lab}" for lab in lineages],
        columns=genes,
    )
    samples = pd.DataFrame(
        {"sample_id": features.index, "lineage_id": lineages, "patient_id": [lab[:2] for lab in lineages]}
    )
    groups = pd.DataFrame(
        {
            "gene_id": genes,
            "gene_id_versioned": [f"{g}.4" for g in genes],
            "symbol": ["A", "B", "C"],
            "group": [0, 1, 1],
        }
    )
    table, summary = morphology_link.link_table(
        patches(["e0", "e1", "e2"]),
        patches(["area_mean", "solidity_mean"]),
        features,
        samples,
        groups,
        link_cfg(n_permutations=5, n_components=2),
        seed=0,
    )
    assert table["rank"].tolist() == [1, 2, 3] and table["r2"].is_monotonic_decreasing
    assert table.loc[0, "symbol"] == "A" and table.loc[0, "gene_id"] == "ENSG1.4" and table.loc[0, "r2"] > 0.8
    assert {"r2_wsi", "r2_morphometry", "q_value_wsi+morphometry", "group"} <= set(table.columns)
    assert summary["n_lineages"] == 12 and summary["n_folds"] == 12
    with pytest.raises(Exception, match="min_lineages"):
        morphology_link.link_table(
            patches(["e0"]).head(10), patches(["a"]), features, samples, groups, link_cfg(), seed=0
        )


def test_genes_without_variance_across_the_lineages_are_dropped_before_the_link_table():
    """Genes at one value in every cohort sample (e.g. 0 in all of them, frequent in real data) have nothing to
    predict: they used to score R^2 = 1 (a zero variance divided by 1), fill the top of the table and put 1.0s
    into the pooled null (every q ~ 1). They are dropped and counted; the null holds the kept genes only."""
    rng = np.random.default_rng(4)
    lineages = [f"L{i}" for i in range(10)]
    shape = rng.normal(size=10)
    rows = np.repeat(np.arange(10), 4)
    wsi = pd.DataFrame(rng.normal(size=(40, 3)) * 0.1, columns=["e0", "e1", "e2"]).assign(
        lineage_id=[lineages[r] for r in rows]
    )
    wsi["e0"] += shape[rows]
    morph = wsi.rename(columns={"e0": "area_mean", "e1": "solidity_mean", "e2": "nn_cv"})
    genes = ["G1", "G2", "ZERO1", "ZERO2"]
    features = pd.DataFrame(
        np.column_stack([shape, rng.normal(size=10), np.full(10, -0.7), np.full(10, 2.0)]),
        index=lineages,
        columns=genes,
    )
    samples = pd.DataFrame({"sample_id": lineages, "lineage_id": lineages, "patient_id": lineages})
    groups = pd.DataFrame({"gene_id": genes, "gene_id_versioned": genes, "symbol": genes, "group": 0})
    table, summary = morphology_link.link_table(
        wsi, morph, features, samples, groups, link_cfg(n_permutations=20, n_components=None), seed=0
    )
    assert set(table["gene_id"]) == {"G1", "G2"} and summary["genes_without_variance"] == 2
    assert summary["n_genes"] == 2 and table["r2"].max() < 1.0
    assert table.loc[table["gene_id"] == "G1", "q_value"].iloc[0] < 0.5  # the null is not full of 1.0s


def test_auroc_matches_a_hand_computed_ranking():
    # positives 0.9 and 0.3 against negatives 0.8 and 0.1: pairs won 0.9>0.8, 0.9>0.1, 0.3>0.1 -> 3 of 4
    assert gene_scoring.auroc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0])) == 0.75
    assert gene_scoring.auroc(np.array([1.0, 1.0]), np.array([1, 0])) == 0.5  # a tie counts one half
    null = gene_scoring.auroc_null(np.arange(10.0), np.arange(10) < 5, 500, np.random.default_rng(0))
    assert null.shape == (500,) and 0.4 < null.mean() < 0.6 and null.max() <= 1.0


def test_scoring_of_a_ranking_against_drivers_and_decoys():
    truth = pd.DataFrame(
        {
            "gene_id": ["G1.1", "G2.1", "G3.1", "G4.1", "G1.1"],
            "role": ["driver", "driver", "decoy", "decoy", "driver"],
            "axis": ["size", "texture", "", "", "size"],
        }
    )
    roles = gene_scoring.gene_roles(truth)
    assert roles.loc["G1", "role"] == "driver" and len(roles) == 4
    # G1 first, then decoy G3, an unplanted gene, G2, decoy G4
    scores = pd.Series([5.0, 2.0, 4.0, 1.0, 3.0], index=["G1", "G2", "G3", "G4", "G5"])
    cfg = dataclasses.replace(CFG.scoring, wide_top=4, n_permutations=200)
    row = gene_scoring.score_ranking(scores, roles, 2, cfg, np.random.default_rng(0))
    assert row["auroc_drivers_vs_decoys"] == 0.75  # G1 beats G3, G4; G2 beats G4 only
    assert row["precision_at_2"] == 0.5 and row["decoys_top_2"] == 1 and row["decoys_top_4"] == 1
    assert row["drivers_top_4"] == 2 and row["n_drivers"] == 2 and 0 < row["permutation_p"] <= 1
    table, by_axis = gene_scoring.score_rankings({"mine": scores}, truth, 2, cfg, seed=0)
    random = table.set_index("ranking").loc["random"]  # the expected value of a random order, not one draw
    assert (
        random["auroc_drivers_vs_decoys"] == 0.5 and random["precision_at_2"] == 2 / 5 and random["decoys_top_2"] == 0.8
    )
    assert set(by_axis["ranking"]) == {"mine", "random"} and table.loc[0, "auroc_drivers_vs_decoys"] == 0.75
    axes = pd.DataFrame(gene_scoring.axis_recovery(scores, roles, 2, cfg)).set_index("axis")
    assert axes.loc["size", "in_top_2"] == 1 and axes.loc["texture", "in_top_2"] == 0
    assert axes.loc["size", "auroc_vs_decoys"] == 1.0 and axes.loc["texture", "auroc_vs_decoys"] == 0.5


def test_seed_aggregation_and_jaccard_on_a_toy_case():
    genes = pd.DataFrame(
        {"gene_id": list("ABCDE"), "gene_id_versioned": [f"{g}.1" for g in "ABCDE"], "symbol": list("abcde")}
    )
    counts = [np.array([5, 4, 3, 0, 0]), np.array([0, 4, 5, 3, 0]), np.array([6, 0, 0, 0, 1])]
    summed, per_seed, metrics = seeds.stability(counts, genes, n=2)
    assert summed["occurrence"].tolist() == [11, 8, 8, 3, 1] and summed["symbol"].tolist()[:3] == ["a", "b", "c"]
    assert summed["occurrence_seed_1"].tolist() == [0, 4, 5, 3, 0]
    # top 2: {A, B}, {C, B}, {A, E}
    assert per_seed["seed_0"].tolist() == ["a", "b"] and per_seed["seed_1"].tolist() == ["c", "b"]
    assert metrics["jaccard_pairs"] == {"0-1": 1 / 3, "0-2": 1 / 3, "1-2": 0.0}
    assert metrics["jaccard_mean"] == pytest.approx(2 / 9) and metrics["in_every_seed_top"] == 0
    assert seeds.top_genes(np.array([0, 2, 2, 1]), 3) == [1, 2, 3]  # ties by model order, zero counts never
    occurrence = pd.DataFrame({"gene_id_unversioned": ["C", "A"], "occurrence": [7, 2]})
    assert seeds.counts_of(occurrence, genes).tolist() == [2, 0, 7, 0, 0]
    figure = seeds.stability_figure(summed, metrics, 2, pd.Series({"A": "driver"}))
    assert len(figure.axes) >= 2


def test_axis_probe_reads_an_encoded_axis_and_not_a_random_one():
    rng = np.random.default_rng(4)
    n = 30
    lineages = [f"L{i}" for i in range(n)]
    readable, hidden = rng.integers(-1, 2, n), rng.integers(-1, 2, n)
    truth = pd.DataFrame({"lineage_id": lineages, "patient_id": lineages, "size": readable, "texture": hidden})
    emb = pd.DataFrame(np.column_stack([readable + rng.normal(0, 0.1, n), rng.normal(size=(n, 3))]), index=lineages)
    table = axis_probe.axis_probe({"enc": emb}, truth, CFG.axis_probe).set_index("representation")
    assert table.loc["enc", "size"] > 0.8 and table.loc["enc", "texture"] < 0.7
    assert table.loc["chance (commonest level)", "size"] < 0.6 and table["n_lineages"].eq(n).all()

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from gb_kedro.reporting import enrichment, gradcam, report, survival


def test_attention_gradcam_by_hand():
    # N=1, H=2, Lq=2, Lk=2
    attn = torch.tensor([[[[0.25, 0.75], [0.5, 0.5]], [[1.0, 0.0], [0.2, 0.8]]]])
    grad = torch.tensor([[[[2.0, -1.0], [1.0, 3.0]], [[-4.0, 5.0], [0.5, 0.0]]]])
    # head 0: [[0.5, 0], [0.5, 1.5]]; head 1: [[0, 0], [0.1, 0]]; mean over heads:
    expected = torch.tensor([[[0.25, 0.0], [0.3, 0.75]]])
    assert torch.allclose(gradcam.attention_gradcam(attn, grad), expected)


def _tiny_model():
    from gb_kedro.models.multimodal import MultimodalModel
    from gb_kedro.models.rna_mae import rna_mae
    from gb_kedro.models.vit import vit

    torch.manual_seed(0)
    return MultimodalModel.from_encoders(
        rna_mae([0, 1, 2, 0, 1, 2, 2], "tiny", dim=16, depth=1, num_heads=2),
        vit("tiny", img_size=32, dim=24, depth=1, num_heads=2),
        embed_dim=8,
        fusion_depth=2,
        fusion_heads=2,
    ).eval()


def test_gradcam_matches_backward_through_retained_attention():
    model = _tiny_model()
    images, rna = torch.rand(3, 3, 32, 32), torch.randn(3, 7)
    with torch.no_grad():
        tokens = model.wsi_encoder.forward_features(images)
    groups, genes = gradcam.gradcam(model, [tokens], rna, layer=0)
    # The same by hand: explicit attention, .backward(), the retained gradient of the map; gradient x input.
    model.set_save_attention(True)
    x = rna.clone().requires_grad_(True)
    logits = model.forward_head(model.forward_fusion(model.encode_rna(x)[1], tokens))
    (logits[:, 1] - logits[:, 0]).sum().backward()
    a = model.fusion_attention[0].attention_map
    by_hand = (a * a.grad.clamp(min=0)).mean(1)[:, 1:, :].sum(-1)
    model.set_save_attention(False)
    assert groups.shape == (3, 3) and genes.shape == (3, 7)
    assert np.allclose(groups, by_hand.detach().numpy(), atol=1e-6)
    assert np.allclose(genes, (x.grad * x).clamp(min=0).detach().numpy(), atol=1e-6)
    assert (groups > 0).any()
    # In the LAST layer only the CLS query reaches the matching head: the group rows get no gradient.
    last, _ = gradcam.gradcam(model, [tokens], rna, layer=-1)
    assert np.allclose(last, 0.0)
    # A baseline: gradient x (input - baseline).
    base = torch.randn(7)
    _, centred = gradcam.gradcam(model, [tokens], rna, layer=0, baseline=base)
    assert np.allclose(centred, (x.grad * (x - base)).clamp(min=0).detach().numpy(), atol=1e-6)


def test_occurrence_counting_and_table2_layout():
    genes = pd.DataFrame(
        {
            "gene_id": ["G0", "G1", "G2", "G3"],
            "gene_id_versioned": ["G0.1", "G1.4", "G2.2", "G3.9"],
            "symbol": ["A", "B", "C", "D"],
        }
    )
    scores = np.array([[0.1, 0.9, 0.5, 0.0], [0.2, 0.1, 0.8, 0.7], [0.0, 0.3, 0.9, 0.1]])
    top = gradcam.top_k_genes(scores, 2)
    assert top.tolist() == [[1, 2], [2, 3], [2, 1]]
    table = gradcam.occurrence_table(top, genes, n=3)
    assert table[["rank", "gene_id", "occurrence", "symbol"]].values.tolist() == [
        [1, "G2.2", 3, "C"],
        [2, "G1.4", 2, "B"],
        [3, "G3.9", 1, "D"],
    ]


def test_enrichment_p_values_match_scipy_and_bh():
    universe = {f"g{i}" for i in range(100)}
    selected = {f"g{i}" for i in range(10)}
    sets = {
        "hit": {f"g{i}" for i in range(0, 20)},
        "miss": {f"g{i}" for i in range(50, 70)},
        "half": {f"g{i}" for i in range(5, 30)},
        "tiny": {"g1", "g2"},
    }
    table = enrichment.hypergeometric_enrichment(selected, universe, sets, min_size=5).set_index("gene_set")
    assert "tiny" not in table.index  # below min_size
    assert table.loc["hit", "overlap"] == 10 and table.loc["miss", "overlap"] == 0 and table.loc["half", "overlap"] == 5
    for name, k, big_k in (("hit", 10, 20), ("miss", 0, 20), ("half", 5, 25)):
        assert table.loc[name, "p_value"] == pytest.approx(stats.hypergeom(100, big_k, 10).sf(k - 1))
    p = table["p_value"].to_numpy()
    assert np.allclose(table["q_value"], stats.false_discovery_control(p, method="bh"))
    assert table.loc["miss", "p_value"] == pytest.approx(1.0)


def test_read_real_msigdb_gmt_mapped_by_symbol(shared, gencode):
    path = shared("genesets/h.all.v7.0.symbols.gmt")
    sets = enrichment.read_gmt(path)
    assert len(sets) == 50 and "HALLMARK_HYPOXIA" in sets
    genes = gencode[0]  # (genes, dropped): gene_id stripped, symbol
    symbol_to_id = dict(zip(genes["symbol"], genes["gene_id"], strict=False))
    hypoxia = enrichment.map_gene_set(sets["HALLMARK_HYPOXIA"], symbol_to_id)
    assert len(hypoxia) >= 0.9 * len(sets["HALLMARK_HYPOXIA"]) and all(g.startswith("ENSG") for g in hypoxia)
    universe = set(genes.loc[genes["gene_type"] == "protein_coding", "gene_id"])
    selected = set(list(hypoxia)[:20])
    table = enrichment.hypergeometric_enrichment(
        selected, universe, {k: enrichment.map_gene_set(v, symbol_to_id) for k, v in sets.items()}, min_size=5
    )
    assert table.iloc[0]["gene_set"] == "HALLMARK_HYPOXIA" and table.iloc[0]["q_value"] < 1e-10


def test_read_gmt_errors_name_the_file(tmp_path):
    from gb_kedro.errors import InputDataError

    with pytest.raises(InputDataError, match="not found"):
        enrichment.read_gmt(tmp_path / "none.gmt")
    bad = tmp_path / "bad.gmt"
    bad.write_text("only_a_name\n")
    with pytest.raises(InputDataError, match="bad.gmt.*line 1"):
        enrichment.read_gmt(bad)


def test_kaplan_meier_and_log_rank():
    t, s = survival.kaplan_meier(np.array([1, 2, 3, 4]), np.array([1, 1, 0, 1]))
    assert t.tolist() == [0, 1, 2, 4] and np.allclose(s, [1, 0.75, 0.5, 0.0])
    rng = np.random.default_rng(0)
    short, long_ = rng.exponential(10, 40), rng.exponential(40, 40)
    chisq, p = survival.log_rank(np.r_[short, long_], np.ones(80), np.r_[["a"] * 40, ["b"] * 40])
    assert p < 0.01 and chisq > 0
    assert np.isnan(survival.log_rank(short, np.ones(40), np.array(["a"] * 40))[1])


def test_vectorised_log_rank_equals_statsmodels():
    from statsmodels.duration.survfunc import survdiff

    rng = np.random.default_rng(3)
    for k in (2, 3, 5):
        time = np.round(rng.exponential(10, 60)) + 1  # ties included
        event = rng.random(60) < 0.7  # censoring included
        labels = rng.integers(0, k, size=(4, 60))
        ours = survival.log_rank_statistics(time, event, labels)
        for row, value in zip(labels, ours, strict=True):
            assert value == pytest.approx(survdiff(time, event.astype(int), row)[0], rel=1e-9)


def _null_cohort(rng, lineages: int = 12, mice: int = 4, mouse_level: bool = False):
    """Survival with a lineage effect (mice of a lineage are alike) and clusters unrelated to it."""
    lineage = np.repeat(np.arange(lineages), mice)
    days = np.round(30 * np.exp(rng.normal(0, 0.5, lineages)[lineage] + rng.normal(0, 0.2, lineage.size))) + 1
    cluster = rng.permutation(np.arange(lineages) % 3)[lineage]
    if mouse_level:
        cluster = np.where(rng.random(lineage.size) < 0.2, rng.integers(0, 3, lineage.size), cluster)
    return days, np.ones(lineage.size, bool), cluster, lineage


@pytest.mark.parametrize("mouse_level", [False, True], ids=["rna-clusters", "image-clusters"])
def test_survival_test_keeps_its_false_positive_rate_when_mice_share_a_lineage(mouse_level):
    """On null survival the lineage-permutation log-rank rejects at about alpha; counting the mice of a lineage as
    independent animals rejects far more often (issue 23: 61 % of random partitions at p < 0.05)."""
    rng = np.random.default_rng(11)
    ours, naive = [], []
    for _ in range(200):
        data = _null_cohort(rng, mouse_level=mouse_level)
        ours.append(survival.lineage_permutation_test(*data, 199, rng)[1])
        naive.append(survival.log_rank(*data[:3])[1])
    assert 0.01 <= np.mean(np.array(ours) <= 0.05) <= 0.09
    assert np.mean(np.array(naive) <= 0.05) > 0.25


def test_survival_test_finds_a_real_cluster_effect():
    rng = np.random.default_rng(5)
    lineage = np.repeat(np.arange(12), 4)
    cluster = (np.arange(12) % 3)[lineage]
    days = np.round(20 * np.exp(0.8 * cluster + rng.normal(0, 0.2, lineage.size))) + 1
    chi2, p = survival.lineage_permutation_test(days, np.ones(lineage.size, bool), cluster, lineage, 499, rng)
    assert chi2 > 10 and p < 0.01


def test_report_is_self_contained_html():
    from matplotlib.figure import Figure

    from gb_kedro.reporting.report import figure_png, render_report

    fig = Figure()
    fig.add_subplot(1, 1, 1).plot([0, 1])
    page = render_report(
        [
            ("A <table>", report.table_html(pd.DataFrame({"x": [0.5]}))),
            ("Figure", f'<img src="{report.png_data_uri(figure_png(fig))}">'),
        ],
        "t",
    )
    assert (
        page.startswith("<!DOCTYPE html>")
        and "A &lt;table&gt;" in page
        and "data:image/png;base64," in page
        and "http" not in page
    )


def test_report_tables_show_counts_as_integers_and_scroll_when_wide():
    from gb_kedro.reporting.report import table_html

    frame = pd.DataFrame({"n": [11.0, np.nan], "accuracy": [0.5, 0.25], "name": ["a", "b"]})
    html = table_html(frame)
    assert "<td>11</td>" in html and "11.000" not in html and "0.500" in html
    assert html.startswith('<div class="wide">')


def test_verdicts_say_when_a_column_or_a_gene_table_cannot_beat_chance_or_its_null():
    from gb_kedro.reporting.report import link_verdict, table1_verdicts, table2_verdict

    rows = []
    for config, (acc, low) in {"deep": (0.9, 0.8), "colour": (0.3, 0.1)}.items():
        rows.append(
            {
                "configuration": config,
                "held_out": "mouse",
                "lineage_accuracy": acc,
                "lineage_accuracy_ci_low": low,
                "lineage_accuracy_ci_high": acc + 0.05,
                "lineage_chance": 0.083,
            }
        )
        rows.append({**rows[-1], "held_out": "lineage", "lineage_accuracy": 0.05, "lineage_accuracy_ci_low": 0.0})
    lines = table1_verdicts(pd.DataFrame(rows))
    assert len(lines) == 1 and lines[0].startswith("unseen lineages") and "no configuration beats chance" in lines[0]
    table2 = pd.DataFrame({"gene_id": ["g1", "g2", "g3"], "planted": ["decoy", "", "driver"]})
    validation = {
        "table_size": 3,
        "gradcam_precision": 1 / 3,
        "permutation_null_p95": 0.4,
        "permutation_p_value": 0.5,
        "n_permutations": 2,
    }
    text = table2_verdict(table2, validation)
    assert "1 planted driver(s) and 1 decoy(s)" in text and text.endswith("not above its null.")
    assert "No planted truth and no null on this data" in table2_verdict(table2, {})
    summary = {"n_genes": 10, "genes_without_variance": 2, "representations": {"wsi": {"genes_q_below_0.05": 0}}}
    assert link_verdict(summary, "wsi").startswith("No gene is predicted") and "2 gene(s) constant" in link_verdict(
        summary, "wsi"
    )


def test_survival_is_optional_in_the_slide_manifest():
    """Without ``survival_days`` the clusters are still made; the survival tests are skipped with one line."""
    from gb_kedro.config import ReportingConfig
    from tests.helpers import base_config

    rng = np.random.default_rng(0)
    lineages = [f"L{i}" for i in range(6)]
    rna = pd.DataFrame({"sample_id": lineages, **{f"z{k}": rng.normal(size=6) for k in range(4)}})
    samples = pd.DataFrame(
        {"sample_id": lineages, "lineage_id": lineages, "patient_id": ["P1", "P1", "P2", "P2", "P3", "P3"]}
    )
    mice = [(lin, m) for lin in lineages for m in range(2)]
    patches = pd.DataFrame(
        {
            "slide_id": [f"{lin}_{m}" for lin, m in mice for _ in range(3)],
            "mouse_id": [f"{lin}_{m}" for lin, m in mice for _ in range(3)],
            "lineage_id": [lin for lin, _ in mice for _ in range(3)],
            "patient_id": "P",
            "split": "train",
            "retrieved_sample": [lin for lin, _ in mice for _ in range(3)],
            **{f"z{k}": rng.normal(size=len(mice) * 3) for k in range(4)},
        }
    )
    manifest = pd.DataFrame(
        {"slide_id": sorted(set(patches["slide_id"])), "mouse_id": sorted(set(patches["mouse_id"]))}
    )
    manifest.attrs["source"] = "my/manifest.tsv"
    cfg = base_config(ReportingConfig, "reporting")
    out, summary, tests, _ = survival.aggressiveness(patches, rna, manifest, samples, cfg)
    assert tests.empty and "survival_days" not in out.columns and len(out) == 12
    assert set(summary.columns) >= {"cluster", "lineages", "mice"}
    with_days = manifest.assign(survival_days=np.arange(12) + 10.0)
    _, _, tests, _ = survival.aggressiveness(patches, rna, with_days, samples, cfg)
    assert set(tests["analysis"]) >= {"mouse survival by rna cluster"} and tests["unit"].eq("lineage").all()

import numpy as np
import pytest
import torch

from gb_kedro import evaluation
from gb_kedro import multimodal as mm


def test_retrieval_metrics_on_a_constructed_case():
    # 3 candidate RNA samples: lineages A1, A2 (patient A), B1 (patient B). 6 held-out patches on 3 slides.
    cand = np.array(["A1", "A2", "B1"])
    patient_of = {"A1": "A", "A2": "A", "B1": "B"}
    rna = np.eye(3)
    true = np.array(["A1", "A1", "A2", "A2", "B1", "B1"])
    slides = np.array(["s1", "s1", "s2", "s2", "s3", "s3"])
    # patch 2 is closest to A1 (wrong lineage, right patient); patch 4 closest to A2 (wrong patient); rest right.
    images = np.array([[1, 0, 0], [1, 0.1, 0], [1, 0.5, 0], [0, 1, 0], [0.2, 1, 0.1], [0, 0, 1]], float)
    sim, ranked = evaluation.retrieval(images, rna, top=2)
    assert sim.shape == (6, 3) and ranked.shape == (6, 2)
    m = evaluation.retrieval_metrics(ranked, true, slides, cand, patient_of, n_boot=200, seed=0)
    assert m["lineage_accuracy"] == pytest.approx(4 / 6)
    assert m["patient_accuracy"] == pytest.approx(5 / 6)
    assert m["errors_within_patient"] == pytest.approx(1 / 2)
    assert m["lineage_balanced_accuracy"] == pytest.approx((1 + 0.5 + 0.5) / 3)  # A1 1, A2 0.5, B1 0.5
    assert m["lineage_top2_accuracy"] == pytest.approx(5 / 6)  # patch 4 ranks A2, A1 before B1
    assert m["lineage_chance"] == pytest.approx(1 / 3)
    assert m["patient_chance"] == pytest.approx((2 / 3 * 4 + 1 / 3 * 2) / 6)
    assert m["n_slides"] == 3 and m["n_candidates"] == 3
    assert m["lineage_accuracy_ci_low"] <= m["lineage_accuracy"] <= m["lineage_accuracy_ci_high"]
    # Resampling slides: per-slide lineage accuracy is 1, 0.5, 0.5, so the interval lies in [0.5, 1].
    assert 0.5 <= m["lineage_accuracy_ci_low"] and m["lineage_accuracy_ci_high"] <= 1.0


def test_bootstrap_interval_is_by_slide():
    # One slide all right, one all wrong: every bootstrap mean is a mix of the two slides' means.
    cand = np.array(["A", "B"])
    ranked = np.array([[0]] * 10 + [[0]] * 10)
    true = np.array(["A"] * 10 + ["B"] * 10)
    slides = np.array(["s1"] * 10 + ["s2"] * 10)
    m = evaluation.retrieval_metrics(ranked, true, slides, cand, {"A": "p", "B": "q"}, n_boot=500, seed=0)
    assert m["lineage_accuracy"] == 0.5
    assert m["lineage_accuracy_ci_low"] == 0.0 and m["lineage_accuracy_ci_high"] == 1.0


def test_step_losses_and_training_signal():
    from gb_kedro.models.multimodal import MultimodalModel
    from gb_kedro.models.rna_mae import rna_mae
    from gb_kedro.models.vit import vit

    torch.manual_seed(0)
    model = MultimodalModel.from_encoders(
        rna_mae([0, 1, 2] * 4, "tiny", dim=32, depth=1),
        vit("tiny", img_size=32, dim=48, depth=1),
        embed_dim=16,
        fusion_depth=1,
    )
    step = mm.MultimodalStep(
        temperature=0.1, itc_weight=1.0, itm_weight=1.0, recon_weight=1.0, mask_rna=True, gene_dropout=0.0
    )
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    images = torch.rand(6, 3, 32, 32) * 0.2 + labels[:, None, None, None] * 0.3
    rna = torch.randn(3, 12)[labels]
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(40):
        out = step(model, (images, rna, labels), "cpu")
        optim.zero_grad()
        out["loss"].backward()
        optim.step()
        first = first if first is not None else {k: float(v.detach()) for k, v in out.items()}
    assert {"itc", "itm", "recon", "recon_masked", "itm_accuracy"} <= set(out)
    assert float(out["itc"]) < first["itc"] and float(out["loss"]) < first["loss"]
    # a batch of one lineage (a validation batch's tail) has no negative pair: only its positives are matched
    model.eval()
    with torch.no_grad():
        alone = step(model, (images[:2], rna[:2], labels[:2]), "cpu")
        mixed = step(model, (images[1:4], rna[1:4], labels[1:4]), "cpu")  # rows 1 (label 0), 2 and 3 (label 1)
    assert torch.isfinite(alone["loss"]) and float(alone["itm_accuracy"]) in (0.0, 0.5, 1.0)
    assert torch.isfinite(mixed["loss"])


def test_table1_markdown_layout():
    row = {  # retrieval_metrics of one held-out set
        "patient_accuracy": 0.5,
        "lineage_accuracy": 0.25,
        "n_patches": 10,
        "n_slides": 2,
        "n_lineages": 3,
        "n_candidates": 4,
        "lineage_balanced_accuracy": 0.3,
        "lineage_top5_accuracy": 0.9,
        "lineage_chance": 0.25,
        "patient_chance": 0.5,
        "errors_within_patient": float("nan"),
    }
    for k in ("patient_accuracy", "lineage_accuracy"):
        row[k + "_ci_low"], row[k + "_ci_high"] = 0.1, 0.9
    sets = {"mouse": row, "patch": {**row, "lineage_accuracy": 0.75}}
    table = evaluation.table1(
        [{"configuration": "x", "split": "all", "sets": sets}, {"configuration": "y", "split": "all", "sets": sets}]
    )
    assert list(table.columns[:5]) == ["configuration", "split", "held_out", "patient_accuracy", "lineage_accuracy"]
    assert len(table) == 4
    text = evaluation.table1_markdown(table)
    # one column per held-out set, in Table 1's order (patches of seen slides first), whatever the input order
    assert "| Configuration | Held-out patches | Unseen mice |" in text
    assert "| x | 0.750 (0.100-0.900) | 0.250 (0.100-0.900) |" in text and "split `all`" in text
    assert "| unseen mice of seen lineages | 10 | 2 | 3 | 4 | 0.25 | 0.5 |" in text


def test_trainable_rows_fine_tune_the_pretrained_encoders_at_encoder_lr_scale():
    """Pretrained, trainable rows give both encoders ``encoder_lr_scale`` of the rate; frozen rows train no
    encoder weight; the random-initialisation row has no pretrained encoder to spare."""
    from gb_kedro.config import MultimodalConfig, Table1Row
    from gb_kedro.models.rna_mae import rna_mae
    from gb_kedro.models.vit import vit
    from gb_kedro.training import param_groups
    from tests.helpers import base_options

    cfg = MultimodalConfig.from_dict(base_options("multimodal", encoder_lr_scale=0.1))
    encoders = (vit("tiny", img_size=32, dim=48, depth=1), rna_mae([0, 1, 2] * 4, "tiny", dim=32, depth=1))

    def row(**kw):
        return Table1Row(
            **{
                "name": "r",
                "label": "r",
                "pretrained": True,
                "train": True,
                "freeze_encoders": False,
                "recon_weight": 0.0,
                **kw,
            }
        )

    lr = cfg.train.lr
    tuned = mm.build_model(*encoders, cfg, row())
    rates = {p: g["lr"] for g in param_groups(tuned, 0.0, lr, mm.encoder_lr_scale(cfg, row())) for p in g["params"]}
    assert all(rates[p] == pytest.approx(0.1 * lr) for p in tuned.wsi_encoder.parameters())
    assert all(rates[p] == pytest.approx(0.1 * lr) for p in tuned.rna_encoder.parameters())
    assert all(rates[p] == pytest.approx(lr) for p in tuned.itm_head.parameters())
    frozen = mm.build_model(*encoders, cfg, row(freeze_encoders=True))
    assert not any(p.requires_grad for p in frozen.wsi_encoder.parameters())
    assert mm.encoder_lr_scale(cfg, row(freeze_encoders=True)) is None
    assert mm.encoder_lr_scale(cfg, row(pretrained=False)) is None

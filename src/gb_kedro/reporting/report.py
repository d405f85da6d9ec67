"""The report: training curves and one self-contained HTML page (figures inlined as data URIs)."""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gb_kedro.config import PatchesConfig, ReportingConfig, SplitConfig
from gb_kedro.evaluation import SET_LABELS, paired_wide, table1_sizes, table1_wide
from gb_kedro.genes import strip_version
from gb_kedro.reporting.gene_scoring import gene_roles
from gb_kedro.tracking import git_commit


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _whole_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Float columns that hold only whole numbers (counts that went through a NaN) shown as integers."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_float_dtype(values) and values.notna().any():
            finite = values.dropna()
            if (finite == finite.round()).all() and finite.abs().max() < 2**53:
                out[column] = values.astype("Int64")
    return out


def table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """A table (counts as integers, other numbers to ``digits`` places) in a box that scrolls sideways when wide."""
    table = _whole_numbers(frame).to_html(
        index=False,
        float_format=lambda v: f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}",
        border=0,
        classes="table",
        na_rep="",
    )
    return f'<div class="wide">{table}</div>'


def verdict(text: str) -> str:
    """A one-line reading of the table or column below it."""
    return f'<p class="verdict">{html.escape(text)}</p>'


def table1_verdicts(table1: pd.DataFrame) -> list[str]:
    """Per held-out set: a line when no configuration's 95 % interval lies above chance there."""
    lines = []
    for name in [s for s in SET_LABELS if s in set(table1["held_out"])]:
        part = table1[table1["held_out"] == name]
        if (part["lineage_accuracy_ci_low"] > part["lineage_chance"]).any():
            continue
        best = part.sort_values("lineage_accuracy", ascending=False).iloc[0]
        lines.append(
            f"{SET_LABELS[name]}: no configuration beats chance (best: {best['configuration']}, "
            f"{best['lineage_accuracy']:.3f}, 95 % interval {best['lineage_accuracy_ci_low']:.3f}-"
            f"{best['lineage_accuracy_ci_high']:.3f}; chance {best['lineage_chance']:.3f})."
        )
    return lines


def render_report(sections: list[tuple[str, str]], title: str) -> str:
    """A self-contained HTML page (images inlined as data URIs: readable offline). ``sections``: (heading, HTML)."""
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table.table{border-collapse:collapse;font-size:13px;margin:.5em 0}table.table td,table.table th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "table.table th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd;margin:4px}h2{border-bottom:2px solid #446;padding-bottom:3px;margin-top:1.6em}"
        ".grid img{max-width:32%}.note{color:#555;font-size:13px}.wide{overflow-x:auto;max-width:100%}"
        ".verdict{font-weight:600;color:#7a2e00;margin:.4em 0}"
    )
    toc = "".join(f'<li><a href="#s{i}">{html.escape(h)}</a></li>' for i, (h, _) in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{html.escape(h)}</h2>\n{content}\n' for i, (h, content) in enumerate(sections))
    return f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{style}</style></head>\n<body><h1>{html.escape(title)}</h1><ol>{toc}</ol>\n{body}</body></html>\n'


def training_curves(histories: dict[str, pd.DataFrame]) -> Figure:
    """Per-epoch training loss (solid) and validation loss (dashed, same colour) of every trained model; keys
    ``rna:<grouping>``, ``wsi:wsi``, ``multimodal:<row>``."""
    histories = {k: v for k, v in histories.items() if v is not None and len(v) and "train/loss" in v.columns}
    fig = Figure(figsize=(11, 3.8), dpi=110)
    groups = [
        ("RNA encoders (TCGA pretraining, then cohort)", [k for k in histories if k.startswith("rna")]),
        ("WSI encoder", [k for k in histories if k.startswith("wsi")]),
        ("Multimodal (Table 1 rows)", [k for k in histories if k.startswith("multimodal")]),
    ]
    colours = matplotlib.colormaps["tab10"]
    for i, (title, names) in enumerate(groups):
        ax = fig.add_subplot(1, 3, i + 1)
        for j, name in enumerate(names):
            h, colour = histories[name], colours(j % 10)
            x = np.arange(len(h))
            ax.plot(x, h["train/loss"], color=colour, label=f"{name.split(':', 1)[-1]} (train)")
            if "val/loss" in h.columns and h["val/loss"].notna().any():
                ax.plot(x, h["val/loss"], "--", color=colour, alpha=0.7, label=f"{name.split(':', 1)[-1]} (validation)")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch (stages concatenated)" if i == 0 else "epoch")
        ax.set_ylabel("loss (the stage's total)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _img(png: bytes, alt: str) -> str:
    return f'<img src="{png_data_uri(png)}" alt="{html.escape(alt)}">'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def paired_verdicts(paired: pd.DataFrame, table1: pd.DataFrame) -> list[str]:
    """On unseen mice: which rows are above / below the reference with a slide-paired interval that excludes 0."""
    part = paired[paired["held_out"] == "mouse"]
    if part.empty:
        return []
    labels = dict(zip(table1["row"], table1["configuration"], strict=False)) if "row" in table1 else {}
    reference = labels.get(part["reference"].iloc[0], part["reference"].iloc[0])
    above = [labels.get(r, r) for r in part.loc[part["difference_ci_low"] > 0, "row"]]
    below = [labels.get(r, r) for r in part.loc[part["difference_ci_high"] < 0, "row"]]
    return [
        f"Unseen mice, against the strong baseline ({reference}): "
        + (f"above it: {'; '.join(above)}. " if above else "no row is above it with a slide-paired interval above 0. ")
        + (f"Below it: {'; '.join(below)}." if below else "")
    ]


def _image_only(wsi_metrics: dict) -> str:
    """An image-only representation's lineage accuracy against the training patches, per held-out set."""
    return "; ".join(
        f"{SET_LABELS[name]}: {wsi_metrics[f'{name}/model_accuracy']:.3f} 1-NN, "
        f"{wsi_metrics.get(f'{name}/model_classifier_accuracy', float('nan')):.3f} classifier (colour 1-NN "
        f"{wsi_metrics[f'{name}/colour_baseline_accuracy']:.3f}, morphometry 1-NN "
        f"{wsi_metrics.get(f'{name}/morphometry_baseline_accuracy', float('nan')):.3f}, 40-feature morphometry "
        f"classifier {wsi_metrics.get(f'{name}/morphometry_classifier_accuracy', float('nan')):.3f}; 1-NN minus it "
        f"{wsi_metrics.get(f'{name}/model_minus_morphometry_classifier', float('nan')):+.3f}, slide-paired 95 % "
        f"interval {wsi_metrics.get(f'{name}/model_minus_morphometry_classifier_ci_low', float('nan')):+.3f} to "
        f"{wsi_metrics.get(f'{name}/model_minus_morphometry_classifier_ci_high', float('nan')):+.3f})"
        for name in ("patch", "mouse")
        if f"{name}/model_accuracy" in wsi_metrics
    )


def _table1_section(
    table1: pd.DataFrame, paired: pd.DataFrame, wsi_metrics: dict, confusion_png: bytes, patch_metrics: dict
) -> str:
    wsi = _image_only(wsi_metrics)
    for name, m in patch_metrics.items():  # patch encoders of your own (patch_features.encoders)
        wsi += (
            f". {name} features ({m['matched']} of {m['matched'] + m['missing']} tumour patches with a feature row): "
            + _image_only(m)
        )
    paired_html = ""
    if len(paired):
        paired_html = (
            f"<h3>Every row minus the strong baseline ({html.escape(str(paired['reference'].iloc[0]))}), "
            "same patches</h3>"
            + "".join(verdict(line) for line in paired_verdicts(paired, table1))
            + table_html(paired_wide(paired))
            + _note(
                "Lineage accuracy difference on the patches both rows answered; 95 % interval of a bootstrap that "
                "resamples the same slides for both rows (patches of one slide are not independent)."
            )
        )
    return (
        "".join(verdict(line) for line in table1_verdicts(table1))
        + "<h3>Lineage accuracy (95 % CI)</h3>"
        + table_html(table1_wide(table1))
        + paired_html
        + "<h3>Patient accuracy (95 % CI)</h3>"
        + table_html(table1_wide(table1, "patient_accuracy"))
        + "<h3>Behind each figure</h3>"
        + table_html(table1_sizes(table1))
        + _note(
            f"Split mode: {table1['split'].iloc[0]}. One training; every row evaluated on each held-out set. "
            "Held-out patches of seen slides share their slide's stain and neighbours with training patches: only "
            "the unseen-mouse and unseen-lineage columns measure morphology. Intervals: 95 % bootstrap over slides. "
            "The morphometry classifier answers the RNA sample of the lineage it predicts (a lineage it never saw "
            "only by the nearest RNA to its probability-weighted guess); the expression bridge predicts the "
            "expression of the genes that follow morphology across the training lineages and can name unseen "
            f"lineages. Image-only lineage accuracy of the WSI encoder against the training patches: {wsi}."
        )
        + _img(confusion_png, "retrieval confusion")
    )


def _image_axes_section(probe: pd.DataFrame, axes: pd.DataFrame, figure_png: bytes) -> str:
    from gb_kedro.reporting.image_axis_probe import SCORED_SETS, wide_intervals

    parts = []
    for name, label in SCORED_SETS.items():
        if name in set(probe["held_out"]):
            unit = probe.loc[probe["held_out"] == name, "bootstrap_unit"].iloc[0]
            heading = f"{label} (95 % interval: bootstrap over {unit}s)"
            parts.append(f"<h3>{html.escape(heading)}</h3>" + table_html(wide_intervals(probe, name).reset_index()))
    link = axes[axes["ranking"].str.startswith("link_")] if len(axes) else axes
    if len(link):
        auroc = link.pivot(index="ranking", columns="axis", values="auroc_vs_decoys").round(3).reset_index()
        parts.append("<h3>Morphology-link genes: AUROC drivers vs decoys, per axis</h3>" + table_html(auroc))
    return (
        "".join(parts)
        + _img(figure_png, "image axis probe")
        + _note(
            "Accuracy of each planted axis's level (-1 / 0 / +1) of a patch's lineage, read by a logistic regression "
            "from each image representation, fit on training patches only and scored on the patches of unseen mice "
            "and unseen lineages, then per slide (each slide the mean of its patches, fit on the training slides); "
            "chance = always the commonest training level. In brackets the 95 % interval of a bootstrap over the "
            "held-out lineages (unseen lineages: the unit such a figure generalises over) or slides (unseen mice). "
            "The WSI encoder and the multimodal "
            "image tower were trained on the training patches' lineages, never on axis levels or held-out patches; "
            "morphometry (40 features) and colour are not trained. The oracle row (embedded cohort) reads the "
            "generator's own record of the tumour cells in each patch: the ceiling of the probe; where it falls short "
            "(cell density: the local-density noise), the cohort has no more per-patch signal to read. "
            "The AUROC table: the morphology-link rankings' "
            "planted drivers of each axis against the matched decoys."
        )
    )


def _validation_section(validation: dict) -> tuple[str, str]:
    v = pd.DataFrame(
        [
            {
                "ranking": "Grad-CAM (Table 2)",
                "precision": validation["gradcam_precision"],
                "recall": validation["gradcam_recall"],
            },
            {
                "ranking": "expression variance",
                "precision": validation["variance_precision"],
                "recall": validation["variance_recall"],
            },
            {
                "ranking": "random (expected)",
                "precision": validation["random_precision_expected"],
                "recall": float("nan"),
            },
            {
                "ranking": f"permutation null, mean ({validation['n_permutations']} shuffles)",
                "precision": validation["permutation_null_mean"],
                "recall": float("nan"),
            },
            {
                "ranking": "permutation null, 95th percentile",
                "precision": validation["permutation_null_p95"],
                "recall": float("nan"),
            },
        ]
    )
    return (
        f"Planted drivers recovered (precision@{validation['table_size']})",
        table_html(v)
        + _note(
            f"{validation['n_drivers_planted']} planted driver genes among {validation['n_genes']}; permutation p = {validation['permutation_p_value']:.3f}. "
            "Read only on the embedded cohort (synthetic_truth)."
        ),
    )


def _seeds_section(summed: pd.DataFrame, per_seed: pd.DataFrame, metrics: dict, figure: bytes, n: int) -> str:
    columns = [
        "rank",
        "gene_id",
        "symbol",
        "occurrence",
        *[c for c in summed.columns if c.startswith("occurrence_seed_")],
    ]
    columns += ["planted"] if "planted" in summed.columns else []
    overlap = (
        f"Overlap of the per-seed top {n}: mean Jaccard {metrics['jaccard_mean']:.2f} (min {metrics['jaccard_min']:.2f}); "
        f"{metrics['in_every_seed_top']} gene(s) in every seed's top {n}."
        if metrics["n_seeds"] > 1
        else "One model only (multimodal.retrainings.seeds = 1): no overlap between seeds to compute."
    )
    return (
        _note(
            f"The model row trained with {metrics['n_seeds']} seed(s) (seed 0 = the Table 1 model); each model's held-out "
            f"patches retrieve an RNA sample and are attributed with it. {overlap}"
        )
        + _img(figure, "seed stability")
        + "<h3>Summed over seeds</h3>"
        + table_html(summed[columns].head(n))
        + "<h3>Per seed</h3>"
        + table_html(per_seed)
    )


def _link_section(link: pd.DataFrame, summary: dict, figure: bytes, n: int) -> str:
    reps = list(summary["representations"])
    columns = ["rank", "gene_id", "symbol", "r2", "spearman_r", "q_value", "group", *[f"r2_{k}" for k in reps]]
    columns += ["planted"] if "planted" in link.columns else []
    nulls = "; ".join(
        f"{k}: {v['dims']} dims, null R^2 95th pct {v['null_r2_p95']:.3f}, {v['genes_q_below_0.05']} genes at q < 0.05"
        for k, v in summary["representations"].items()
    )
    return (
        verdict(link_verdict(summary, summary.get("rank_by", reps[-1])))
        + table_html(link[columns].head(n))
        + _note(
            f"For each gene, each lineage's expression (z-scored) predicted from the mean image representation of its "
            f"tumour patches by ridge regression fitted on the OTHER lineages (leave-one-{summary['cv_unit']}-out, "
            f"{summary['n_folds']} folds over {summary['n_lineages']} lineages; penalty per gene chosen inside the training "
            "lineages). R^2 <= 0: no skill. What each representation has seen: the WSI encoder was trained on the training "
            "lineages' patches with lineage labels, never on RNA; the morphometry features are not trained. q: "
            f"Benjamini-Hochberg over genes of a permutation p (images shuffled against expression, null pooled over genes). {nulls}."
        )
        + _img(figure, "morphology link")
    )


def _scoring_section(scoring: pd.DataFrame, axes: pd.DataFrame) -> str:
    per_axis = axes.pivot(index="ranking", columns="axis", values="auroc_vs_decoys").reindex(scoring["ranking"])
    return (
        table_html(scoring.drop(columns=["ranking"]))
        + _note(
            f"{int(scoring['n_drivers'].iloc[0])} planted drivers and {int(scoring['n_decoys'].iloc[0])} decoys (same PPI modules and "
            "effect sizes, a lineage level independent of every morphology axis) among "
            f"{int(scoring['n_genes'].iloc[0])} genes. AUROC drivers vs decoys is the test that matters: any gene that varies between "
            "lineages identifies them, so variance cannot separate drivers from decoys by construction. permutation_p: the "
            "driver/decoy labels shuffled. Embedded cohort only."
        )
        + "<h3>Per morphology axis: AUROC of its drivers vs the decoys</h3>"
        + table_html(per_axis.reset_index())
    )


def _axis_probe_section(probe: pd.DataFrame, rna: dict) -> str:
    return table_html(probe) + _note(
        "Accuracy of each morphology axis's level (-1 / 0 / +1) of a held-out lineage, read by a logistic regression from "
        "the lineages' RNA embeddings (leave-one-lineage-out); PCA of the encoders' input at the same width, fitted on "
        "TCGA training samples. Does the PPI grouping make the driver programmes easier to read? Neither encoder saw "
        "the axis levels. "
        f"(Descriptive, no longer a criterion: 5-NN held-out TCGA site accuracy {rna.get('knn_site_accuracy_encoder', float('nan')):.3f}, "
        f"PCA {rna.get('knn_site_accuracy_pca', float('nan')):.3f}.)"
    )


def run_header(
    cfg: ReportingConfig,
    split: SplitConfig,
    patches: PatchesConfig,
    marker: dict,
    rna_encoder,
    wsi_encoder,
    model,
) -> dict:
    """The report's header: which MLflow run, when, which commit, which data and split, and how the models were
    trained (from their records: ``meta["training"]``); ``marker``: the synthetic generator's (empty on your data)."""
    import mlflow

    active = mlflow.active_run()
    rna, wsi, mm = (m.meta.get("training", {}) for m in (rna_encoder, wsi_encoder, model))
    return {
        "MLflow run": active.info.run_id if active is not None else "not tracked",
        "date (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "commit": git_commit(),
        "data": f"embedded synthetic cohort, preset {marker.get('preset')}"
        if marker
        else "your data (conf/<env>/catalog.yml)",
        "evaluation split": f"{split.mode} (test fraction {split.test_fraction}, test mice per lineage {split.test_mice_per_lineage}, seed {split.seed})",
        "epochs": f"RNA {rna.get('pretrain_epochs')} TCGA + {rna.get('cohort_epochs')} cohort; WSI {wsi.get('epochs')} "
        f"({wsi.get('warmup_epochs')} warm-up); multimodal {mm.get('epochs')}",
        "models": f"RNA {rna.get('preset')}, ViT {wsi.get('preset')} on {patches.model_px}-px windows, fusion depth "
        f"{mm.get('fusion_depth')}",
        "Grad-CAM genes per patch": cfg.top_k_per_patch,
    }


def header_html(run: dict) -> str:
    """Which run made this page: MLflow run, date, commit, data (preset), split and key parameters."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in run.items())
    return f'<table class="table header">{rows}</table>'


def mark_planted(table2: pd.DataFrame, truth_drivers: pd.DataFrame) -> pd.DataFrame:
    """Table 2 with a ``planted`` column (driver / decoy / empty) when the embedded cohort's truth is there."""
    if truth_drivers is None or truth_drivers.empty:
        return table2
    role = gene_roles(truth_drivers)["role"]
    return table2.assign(planted=table2["gene_id"].astype(str).map(strip_version).map(role).fillna(""))


def table2_verdict(table2: pd.DataFrame, validation: dict) -> str:
    """Table 2 against its null (embedded cohort: planted drivers and decoys in its top rows, precision against
    the permutation null) or, without planted truth, what it can and cannot say."""
    if not validation:
        return (
            "No planted truth and no null on this data: Table 2 ranks the genes that tell the lineages apart "
            "(retrieval with one RNA sample per lineage is lineage identification), not genes shown to shape the "
            "tissue; read it beside the morphology-link table."
        )
    planted = table2["planted"] if "planted" in table2.columns else pd.Series(dtype=str)
    n, p95 = validation["table_size"], validation["permutation_null_p95"]
    beats = validation["n_permutations"] > 0 and validation["gradcam_precision"] > p95
    null = (
        f"its permutation null's 95th percentile {p95:.2f} ({validation['n_permutations']} retrainings, "
        f"p = {validation['permutation_p_value']:.2f})"
        if validation["n_permutations"]
        else "no permutation null (multimodal.retrainings.permutations = 0)"
    )
    return (
        f"Top {n}: {int((planted == 'driver').sum())} planted driver(s) and {int((planted == 'decoy').sum())} decoy(s); "
        f"precision {validation['gradcam_precision']:.2f} against {null}: "
        + ("above its null." if beats else "not above its null.")
    )


def link_verdict(summary: dict, rank_by: str) -> str:
    """How many genes the morphology-link table finds at q < 0.05 (and the genes it could not rank)."""
    found = summary["representations"][rank_by]["genes_q_below_0.05"]
    constant = summary.get("genes_without_variance", 0)
    skipped = f" {constant} gene(s) constant across the cohort's lineages are not ranked." if constant else ""
    if not found:
        return (
            f"No gene is predicted from the images of unseen lineages better than its permutation null (q < 0.05 "
            f"for none of {summary['n_genes']} genes, {rank_by}).{skipped}"
        )
    return f"{found} of {summary['n_genes']} genes at q < 0.05 ({rank_by}).{skipped}"


def profile_figure(profile: pd.DataFrame, n: int = 25) -> Figure:
    """The ``n`` longest nodes of the run, seconds as horizontal bars (training nodes darker)."""
    top = profile.head(n).iloc[::-1]
    fig = Figure(figsize=(8, 0.22 * len(top) + 1.0), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    colours = ["#2b4a7a" if pd.notna(e) else "#8fa6c7" for e in top["epochs"]]
    ax.barh(top["node"], top["seconds"], color=colours)
    ax.set_xlabel("seconds (dark: training nodes)")
    ax.tick_params(axis="y", labelsize=6)
    ax.set_title(f"Time profile: the {len(top)} longest nodes of {len(profile)}", fontsize=9)
    fig.tight_layout()
    return fig


def _profile_section(profile: pd.DataFrame) -> str:
    total = profile["seconds"].sum()
    training = profile[profile["epochs"].notna()]
    return (
        _img(figure_png(profile_figure(profile)), "time profile")
        + table_html(profile.head(25))
        + _note(
            f"{total:.0f} s in {len(profile)} nodes before this report; {training['seconds'].sum():.0f} s "
            f"({training['seconds'].sum() / max(total, 1e-9):.0%}) in the {len(training)} training nodes. seconds: "
            "running the node and saving its outputs (save_seconds: the saving part; a lazily written dataset, such as "
            "the synthetic slides, does its work while it is saved). epoch_seconds: mean wall time of an epoch "
            "(training and validation); samples_per_s: training samples per second. "
            "All of it in data/08_reporting/timings.json once the run ends, and in the MLflow run (time/<node>)."
        )
    )


def build_report(
    tables: dict,
    metrics: dict,
    figures: dict,
    tsne: dict,
    qc_pngs: dict,
    n_qc_slides: int,
    run: dict,
    model_label: str,
    n_attributed: int,
    profile: pd.DataFrame | None = None,
    patch_metrics: dict | None = None,
) -> str:
    """One self-contained HTML page with every table and figure of the run, each captioned.

    ``tables``: table1, table2 (with ``planted`` when known), enrichment, gradcam_groups, cluster_survival,
    survival_tests, mice; ``metrics``: validation, wsi, rna_metrics (the model row's RNA encoder); ``figures`` (PNG
    bytes): gradcam, km, curves, confusion; ``tsne``: grouping -> Fig. 5; ``run``: the header (which run, commit,
    data, split, parameters); ``model_label``: Table 2's model; ``n_attributed``: the held-out patches Grad-CAM
    attributed; ``profile``: the run's time profile so far (:meth:`gb_kedro.profiling.RunProfile.table`);
    ``patch_metrics``: encoder -> the image-only metrics of each patch encoder of your own."""
    validation, rna = metrics["validation"], metrics["rna_metrics"]
    run = {
        **run,
        "permutation-null retrainings": validation["n_permutations"]
        if validation
        else "none scored (no planted truth)",
    }
    table2_note = _note(
        f"The genes most often among the top {run.get('Grad-CAM genes per patch', '')} Grad-CAM genes of the {n_attributed} held-out "
        f"patches (every held-out set), each paired with the RNA sample it retrieved (model: {model_label}). "
        + (
            "'planted' marks the embedded cohort's driver and decoy genes. "
            if "planted" in tables["table2"].columns
            else ""
        )
        + "Figure and table below: mean Grad-CAM per gene group; the genes' occurrences."
    )
    sections = [
        (
            "Table 1: WSI patch -> RNA retrieval",
            _table1_section(
                tables["table1"], tables["table1_paired"], metrics["wsi"], figures["confusion"], patch_metrics or {}
            ),
        ),
        (
            "Table 2: Grad-CAM genes",
            verdict(table2_verdict(tables["table2"], validation))
            + table_html(tables["table2"])
            + table2_note
            + _img(figures["gradcam"], "Grad-CAM")
            + table_html(tables["gradcam_groups"]),
        ),
    ]
    n = len(tables["table2"])
    sections.append(
        (
            "Table 2 across seeds: stability of the Grad-CAM genes",
            _seeds_section(
                tables["seeds_summed"], tables["seeds_top"], metrics["seeds_metrics"], figures["seeds_figure"], n
            ),
        )
    )
    sections.append(
        (
            "Morphology-link genes: predicted from the images of unseen lineages",
            _link_section(tables["link_table"], metrics["link_summary"], figures["link_figure"], n),
        )
    )
    if len(tables["scoring"]):
        sections.append(
            ("Every gene ranking against the planted truth", _scoring_section(tables["scoring"], tables["axes"]))
        )
    if validation:
        sections.append(_validation_section(validation))
    enrichment = tables["enrichment"]
    sig = enrichment[enrichment["significant"]] if len(enrichment) else enrichment
    sections.append(
        (
            "Gene-set enrichment of the top Grad-CAM and morphology-link genes",
            (table_html(sig.drop(columns=["genes"]).head(30)) if len(sig) else "<p>No significant gene set.</p>")
            + _note(
                f"{len(enrichment)} (ranking, set) pairs tested (hypergeometric, Benjamini-Hochberg within each ranking)."
            ),
        )
    )
    mice = tables["mice"]
    sections.append(
        (
            "Aggressiveness: lineage clusters and survival",
            (
                _img(figures["km"], "Kaplan-Meier")
                + table_html(tables["cluster_survival"])
                + table_html(tables["survival_tests"])
                + _note(
                    "p_value: the log-rank statistic's permutation p with the lineage as the unit (RNA clusters "
                    "permuted across lineages; for image clusters, whole lineages' survival moved between lineages of "
                    "the same size). p_value_as_independent counts every mouse as an independent animal: it is not a "
                    "valid test here (mice of one lineage carry one tumour), shown for comparison only."
                )
                if len(tables["survival_tests"])
                else verdict(
                    "Survival not analysed: the slide manifest has no survival_days column (optional); the lineage "
                    "clusters below are kept."
                )
                + table_html(tables["cluster_survival"])
            )
            + _note(
                f"Mouse-level lineage retrieval (majority vote of a mouse's patches): {mice['majority_correct'].mean():.3f} over {len(mice)} mice."
            ),
        )
    )
    sections.append(
        (
            "Fig. 5: t-SNE of RNA embeddings",
            "".join(_img(png, f"t-SNE {grouping}") for grouping, png in tsne.items())
            + _note(
                f"RNA encoder of the model row ({rna.get('variant', '')} groups): cohort nearest to brain "
                f"{rna.get('cohort_nearest_brain_fraction_encoder', float('nan')):.0%}."
            ),
        )
    )
    if len(tables["image_axes"]):
        sections.append(
            (
                "Image representations: which morphology axes they read",
                _image_axes_section(tables["image_axes"], tables["axes"], figures["image_axes_figure"]),
            )
        )
    if len(tables["axis_probe"]):
        sections.append(
            ("RNA encoders: morphology axes read from the embeddings", _axis_probe_section(tables["axis_probe"], rna))
        )
    sections.append(
        (
            "Training curves",
            _img(figures["curves"], "training curves")
            + _note(
                "Per-epoch loss of every trained model: solid = training, dashed (same colour) = validation part. The WSI encoder's loss "
                "changes meaning at the end of its softmax warm-up; the RNA encoders' curves concatenate TCGA pretraining and the cohort stage."
            ),
        )
    )
    if profile is not None and len(profile):
        sections.append(("Time profile of this run", _profile_section(profile)))
    qc = "".join(_img(png, name) for name, png in list(qc_pngs.items())[:n_qc_slides])
    sections.append(
        (
            "Slide QC: kept tumour patches outlined",
            f'<div class="grid">{qc}</div>'
            + _note(
                f"The first {min(n_qc_slides, len(qc_pngs))} of {len(qc_pngs)} slides. Green squares: tumour patches kept (HSL brown ratio above "
                "the threshold); faint yellow: scored patches with some brown below it; the title gives the counts."
            ),
        )
    )
    page = render_report(sections, "gb-kedro report")
    return page.replace("<ol>", header_html(run) + "<ol>", 1)

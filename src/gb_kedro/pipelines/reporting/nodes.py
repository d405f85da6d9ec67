"""Nodes of the ``reporting`` pipeline; the logic lives in :mod:`gb_kedro.reporting`."""

from __future__ import annotations

import html
import logging

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from gb_kedro import multimodal as mm
from gb_kedro import reporting as rep
from gb_kedro import wsi_encoding as wsi
from gb_kedro.errors import InputDataError
from gb_kedro.pipelines.multimodal.nodes import load_multimodal

logger = logging.getLogger(__name__)


def _log_figure(fig: Figure, name: str) -> None:
    """Add a figure to the active (kedro-mlflow) run, if any."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_figure(fig, f"reporting/{name}")


def _pairs(bundle: dict, predictions: pd.DataFrame, patch_index: pd.DataFrame, slide_manifest: pd.DataFrame,
           cohort_features: pd.DataFrame, wsi_options: dict) -> tuple[list[torch.Tensor], np.ndarray, pd.DataFrame]:
    """Image tokens of the held-out patches of ``predictions`` and the RNA vectors of their predicted samples."""
    model = load_multimodal(bundle)
    index = patch_index.reset_index(drop=True)
    key = index[["slide_id", "x", "y"]].astype(str).agg("/".join, axis=1)
    position = pd.Series(np.arange(len(index)), index=key.to_numpy())
    wanted = predictions[["slide_id", "x", "y"]].astype(str).agg("/".join, axis=1)
    if not wanted.isin(position.index).all():
        raise InputDataError("retrieval_predictions", "predicted patches are not in the patch index: rerun the multimodal pipeline")
    images = wsi.decoded_patches(index, slide_manifest, wsi_options)
    rows = position.loc[wanted.to_numpy()].to_numpy()
    tokens = rep.image_window_tokens(model, np.asarray(images[rows]), wsi.patch_geometry(wsi_options)[1])
    rna = cohort_features.loc[predictions["sample_1"], bundle["genes"]].to_numpy(np.float32)
    return tokens, rna, model


def _baseline(cohort_features: pd.DataFrame, bundle: dict, options: dict) -> np.ndarray | None:
    """The reference RNA vector of gradient x (input - reference): ``cohort_mean`` or ``zero``."""
    kind = options.get("gene_baseline", "cohort_mean")
    if kind not in ("cohort_mean", "zero"):
        raise ValueError(f"reporting.gene_baseline must be cohort_mean or zero, not {kind!r}")
    return cohort_features[bundle["genes"]].to_numpy(np.float32).mean(0) if kind == "cohort_mean" else None


def rank_genes_gradcam(
    bundle: dict,
    predictions: pd.DataFrame,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    gene_groups: pd.DataFrame,
    options: dict,
    wsi_options: dict,
):
    """Grad-CAM of each held-out patch paired with its predicted RNA sample: per-patch top-k genes, their
    occurrence over all patches (Table 2: the first ``table_size`` rows), and the group-level ranking."""
    tokens, rna, model = _pairs(bundle, predictions, patch_index, slide_manifest, cohort_features, wsi_options)
    groups, genes = rep.gradcam_batched(model, tokens, rna, layer=int(options.get("gradcam_layer", 0)), baseline=_baseline(cohort_features, bundle, options))
    genes_table = gene_groups.set_index("gene_id").loc[rep.strip_version(bundle["genes"])].reset_index()
    k = int(options.get("top_k_per_patch", 20))
    top = rep.top_k_genes(genes, k)
    occurrence = rep.occurrence_table(top, genes_table, n=len(genes_table))
    table2 = occurrence.head(int(options.get("table_size", 15)))[["rank", "gene_id", "occurrence", "symbol"]]
    group_sizes = genes_table.groupby("group").size()
    group_table = pd.DataFrame({"group": np.arange(groups.shape[1]), "n_genes": group_sizes.reindex(np.arange(groups.shape[1])).fillna(0).astype(int).to_numpy(),
                                "mean_gradcam": groups.mean(0), "top_group_share": np.bincount(groups.argmax(1), minlength=groups.shape[1]) / len(groups)})
    group_table = group_table.sort_values("mean_gradcam", ascending=False).reset_index(drop=True)
    per_patch = predictions[["slide_id", "x", "y", "lineage_id", "sample_1"]].copy()
    per_patch["top_genes"] = [",".join(genes_table["gene_id"].to_numpy()[row]) for row in top]
    per_patch["top_group"] = groups.argmax(1)
    fig = Figure(figsize=(7, 3.6), dpi=110)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ax1.bar(group_table["group"].astype(str), group_table["mean_gradcam"])
    ax1.set_xlabel("gene group (PPI)")
    ax1.set_ylabel("mean Grad-CAM (attention x gradient)")
    ax2.barh(table2["symbol"][::-1], table2["occurrence"][::-1])
    ax2.set_xlabel(f"occurrence in per-patch top-{k} (of {len(predictions)} patches)")
    ax2.tick_params(axis="y", labelsize=7)
    fig.suptitle("Grad-CAM: gene groups and Table 2 genes", fontsize=9)
    fig.tight_layout()
    _log_figure(fig, "gradcam.png")
    md = "| Rank | Gene ID | Occurrence | Symbol |\n|---|---|---|---|\n" + "".join(f"| {r.rank} | {r.gene_id} | {r.occurrence} | {r.symbol} |\n" for r in table2.itertuples())
    logger.info("Table 2 (Grad-CAM top %d): %s", len(table2), ", ".join(table2["symbol"]))
    return occurrence, table2, md, group_table, per_patch, fig


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation without fixed points (every lineage gets another lineage's RNA)."""
    while True:
        perm = rng.permutation(n)
        if n < 2 or not (perm == np.arange(n)).any():
            return perm


def validate_against_truth(
    occurrence: pd.DataFrame,
    bundle: dict,
    wsi_bundle: dict,
    rna_bundle: dict,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    truth_drivers: pd.DataFrame,
    options: dict,
    multimodal_options: dict,
    row: dict,
    wsi_options: dict,
) -> dict:
    """Embedded cohort only: planted-driver precision@n and recall of Table 2 against (a) the genes of
    highest cohort expression variance, (b) random genes (expected value) and (c) a permutation null: the
    model of ``row`` RETRAINED with the patch -> RNA pairing shuffled (each lineage's patches paired with
    another lineage's RNA sample; ``n_permutations`` times), then the same Grad-CAM and Table 2."""
    from gb_kedro.pipelines.multimodal.nodes import build_model, fit_pairs, held_out_pairs, training_pairs

    if truth_drivers.empty:  # real data: no planted truth (the catalog entry is optional)
        logger.info("reporting: no planted truth (synthetic_truth/drivers.tsv): validation skipped")
        return {}
    n = int(options.get("table_size", 15))
    k = int(options.get("top_k_per_patch", 20))
    universe = rep.strip_version(bundle["genes"])
    drivers = set(rep.strip_version(truth_drivers.loc[truth_drivers["role"] == "driver", "gene_id"])) & set(universe)
    if not drivers:
        raise InputDataError("synthetic_truth/drivers.tsv", "no planted driver gene among the model genes")
    gradcam_p, gradcam_r = rep.precision_recall(occurrence["gene_id_unversioned"].head(n), drivers)
    variance = cohort_features[bundle["genes"]].var(axis=0).to_numpy()
    var_top = [universe[i] for i in np.argsort(-variance, kind="stable")[:n]]
    var_p, var_r = rep.precision_recall(var_top, drivers)

    # Permutation null: retrain on shuffled pairs, retrieve, attribute, count.
    rng = np.random.default_rng(int(options.get("seed", 0)))
    index = patch_index.reset_index(drop=True)
    train_rows, lineages, labels, rna_of_label = training_pairs(index, cohort_features, cohort_samples, bundle["genes"])
    images = wsi.decoded_patches(index, slide_manifest, wsi_options)
    train_images = np.asarray(images[train_rows])
    _, rna_all, _, test_rows, _ = held_out_pairs(index, cohort_features, cohort_samples, bundle["genes"])
    crop = wsi.patch_geometry(wsi_options)[1]
    genes_table = pd.DataFrame({"gene_id": universe, "gene_id_versioned": bundle["genes"], "symbol": universe})
    baseline = _baseline(cohort_features, bundle, options)
    null = []
    for j in range(int(options.get("n_permutations", 3))):
        perm = _derangement(len(lineages), rng)
        model = build_model(wsi_bundle, rna_bundle, multimodal_options, row)
        fit_pairs(model, train_images, labels, [rna_of_label[p] for p in perm], multimodal_options, wsi_options, float(row.get("recon_weight", 0.0)), f"null_{j}")
        model.cpu().eval()
        image_z = mm.embed_images(model, np.asarray(images[test_rows]), crop=crop)
        _, ranked = mm.retrieval(image_z, mm.embed_rna(model, rna_all), top=1)
        tokens = rep.image_window_tokens(model, np.asarray(images[test_rows]), crop)
        _, genes = rep.gradcam_batched(model, tokens, rna_all[ranked[:, 0]], layer=int(options.get("gradcam_layer", 0)), baseline=baseline)
        table = rep.occurrence_table(rep.top_k_genes(genes, k), genes_table, n=n)
        null.append(rep.precision_recall(table["gene_id_unversioned"], drivers)[0])
        logger.info("permutation null %d: precision@%d %.3f", j, n, null[-1])
    null = np.asarray(null, float)
    metrics = {
        "table_size": n, "n_drivers_planted": len(drivers), "n_genes": len(universe), "n_patches": int(test_rows.sum()),
        "gradcam_precision": gradcam_p, "gradcam_recall": gradcam_r,
        "variance_precision": var_p, "variance_recall": var_r,
        "random_precision_expected": len(drivers) / len(universe),
        "permutation_null_mean": float(null.mean()) if len(null) else float("nan"),
        "permutation_null_p95": float(np.quantile(null, 0.95)) if len(null) else float("nan"),
        "permutation_null_values": null.round(4).tolist(),
        "permutation_p_value": float((1 + (null >= gradcam_p).sum()) / (1 + len(null))), "n_permutations": len(null),
        "gradcam_drivers_found": ",".join(sorted(set(occurrence["gene_id_unversioned"].head(n)) & drivers)),
    }
    logger.info("Grad-CAM precision@%d %.3f (variance %.3f, random %.3f, permutation null p95 %.3f)", n, gradcam_p, var_p,
                metrics["random_precision_expected"], metrics["permutation_null_p95"])
    return metrics


def enrich_top_genes(occurrence: pd.DataFrame, gene_table: pd.DataFrame, options: dict) -> pd.DataFrame:
    """Hypergeometric enrichment of the top ``top_n`` Grad-CAM genes in every GMT file of
    ``enrichment.gmt_paths`` (universe = the harmonised model genes), Benjamini-Hochberg per run."""
    opts = options.get("enrichment", {})
    universe = set(gene_table["gene_id"])
    symbol_to_id = dict(zip(gene_table["symbol"].astype(str), gene_table["gene_id"], strict=False))
    selected = set(occurrence["gene_id_unversioned"].head(int(opts.get("top_n", 30))))
    sets = {}
    for path in opts.get("gmt_paths", []) or []:
        for name, members in rep.read_gmt(path).items():
            sets[f"{name}"] = rep.map_gene_set(members, symbol_to_id)
    table = rep.hypergeometric_enrichment(selected, universe, sets, int(opts.get("min_set_size", 5)))
    table["significant"] = table["q_value"] < float(opts.get("alpha", 0.05))
    logger.info("enrichment: %d gene sets tested, %d significant (q < %s)", len(table), int(table["significant"].sum()), opts.get("alpha", 0.05))
    return table


def aggressiveness(
    bundle: dict,
    patch_index: pd.DataFrame,
    slide_manifest: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    options: dict,
    wsi_options: dict,
):
    """Lineages clustered (k-means) by their multimodal RNA embedding; mice aggregated (mean image
    embedding, and majority vote of their patches' retrieved lineage); Kaplan-Meier + log-rank of mouse
    survival by cluster (the lineage's, and the one the mouse's images point to); patient OS/PFS per cluster."""
    from sklearn.cluster import KMeans

    opts = options.get("survival", {})
    model = load_multimodal(bundle)
    samples = cohort_samples[cohort_samples["sample_id"].isin(cohort_features.index)].reset_index(drop=True)
    rna_z = mm.embed_rna(model, cohort_features.loc[samples["sample_id"], bundle["genes"]].to_numpy(np.float32))
    k = min(int(opts.get("n_clusters", 3)), len(samples))
    labels = KMeans(k, n_init=10, random_state=int(options.get("seed", 0))).fit_predict(rna_z)
    index = patch_index.reset_index(drop=True)
    images = wsi.decoded_patches(index, slide_manifest, wsi_options)
    image_z = mm.embed_images(model, images, crop=wsi.patch_geometry(wsi_options)[1])
    _, ranked = mm.retrieval(image_z, rna_z, top=1)
    index["retrieved_lineage"] = samples["lineage_id"].to_numpy()[ranked[:, 0]]
    centroids = np.stack([rna_z[labels == c].mean(0) for c in range(k)])
    mice = []
    for mouse, rows in index.groupby("mouse_id"):
        mean = image_z[rows.index].mean(0)
        mice.append({"mouse_id": mouse, "lineage_id": rows["lineage_id"].iloc[0], "patient_id": rows["patient_id"].iloc[0],
                     "n_patches": len(rows), "held_out_patches": int((rows["split"] == "test").sum()),
                     "majority_lineage": rows["retrieved_lineage"].value_counts().index[0],
                     "image_cluster": int(np.argmax(centroids @ mean / (np.linalg.norm(mean) + 1e-12)))})
    mice = pd.DataFrame(mice)
    manifest = slide_manifest.drop_duplicates("mouse_id").set_index("mouse_id")
    if "survival_days" not in manifest.columns:
        raise InputDataError("slide_manifest", "no survival_days column: the aggressiveness analysis needs mouse survival")
    mice["survival_days"] = mice["mouse_id"].map(manifest["survival_days"]).astype(float)
    mice["event"] = mice["mouse_id"].map(manifest["event"]).astype(int) if "event" in manifest.columns else 1
    cluster_of = dict(zip(samples["lineage_id"], labels, strict=True))
    mice = mice[mice["lineage_id"].isin(cluster_of)].reset_index(drop=True)
    mice["rna_cluster"] = mice["lineage_id"].map(cluster_of)
    # Name clusters by median mouse survival (C1 = shortest).
    order = mice.groupby("rna_cluster")["survival_days"].median().sort_values().index.tolist()
    order += [c for c in range(k) if c not in order]
    name = {c: f"C{i + 1}" for i, c in enumerate(order)}
    mice["rna_cluster"] = mice["rna_cluster"].map(name)
    mice["image_cluster"] = mice["image_cluster"].map(name)
    samples["cluster"] = [name[c] for c in labels]
    rows = []
    for column in ("rna_cluster", "image_cluster"):
        chisq, p = rep.log_rank(mice["survival_days"], mice["event"], mice[column])
        rows.append({"analysis": f"mouse survival by {column.replace('_', ' ')}", "n": len(mice), "groups": mice[column].nunique(), "chi2": chisq, "p_value": p})
    for outcome in ("os_months", "pfs_months"):
        if outcome in samples.columns and samples[outcome].notna().any():
            ok = samples[outcome].notna()
            chisq, p = rep.log_rank(samples.loc[ok, outcome], np.ones(ok.sum()), samples.loc[ok, "cluster"])
            rows.append({"analysis": f"patient {outcome.split('_')[0].upper()} of lineages by cluster (lineages of a patient share it)", "n": int(ok.sum()),
                         "groups": samples.loc[ok, "cluster"].nunique(), "chi2": chisq, "p_value": p})
    tests = pd.DataFrame(rows)
    summary = mice.groupby("rna_cluster").agg(lineages=("lineage_id", "nunique"), mice=("mouse_id", "size"), median_survival_days=("survival_days", "median"),
                                              mean_survival_days=("survival_days", "mean")).reset_index().rename(columns={"rna_cluster": "cluster"})
    for outcome in ("os_months", "pfs_months"):
        if outcome in samples.columns:
            summary[f"mean_patient_{outcome}"] = summary["cluster"].map(samples.groupby("cluster")[outcome].mean())
    mouse_accuracy = float((mice["majority_lineage"] == mice["lineage_id"]).mean())
    curves = {f"{c} ({(mice['rna_cluster'] == c).sum()} mice)": rep.kaplan_meier(g["survival_days"], g["event"]) for c, g in mice.groupby("rna_cluster")}
    p_mouse = tests.iloc[0]["p_value"]
    fig = rep.km_figure(curves, f"Mouse survival by lineage cluster (multimodal RNA embedding, k={k}); log-rank p = {p_mouse:.2g}", "days")
    _log_figure(fig, "survival_km.png")
    logger.info("aggressiveness: %d clusters, log-rank p = %.3g; mouse-level majority-vote lineage accuracy %.3f", k, p_mouse, mouse_accuracy)
    mice_out = mice.assign(majority_correct=mice["majority_lineage"] == mice["lineage_id"])
    return mice_out, summary, tests, fig


def training_curves(histories: dict[str, pd.DataFrame]) -> Figure:
    """Per-epoch training loss (and validation loss where there is one) of every trained model."""
    histories = {k: v for k, v in histories.items() if v is not None and len(v) and "train/loss" in v.columns}
    fig = Figure(figsize=(10, 3.4), dpi=110)
    groups = [("RNA encoders", [k for k in histories if k.startswith("rna")]), ("WSI encoder", [k for k in histories if k.startswith("wsi")]),
              ("Multimodal (Table 1 rows)", [k for k in histories if k.startswith("multimodal")])]
    for i, (title, names) in enumerate(groups):
        ax = fig.add_subplot(1, 3, i + 1)
        for name in names:
            h = histories[name]
            x = np.arange(len(h))
            ax.plot(x, h["train/loss"], label=name.split(":", 1)[-1])
            if "val/loss" in h.columns and h["val/loss"].notna().any():
                ax.plot(x, h["val/loss"], "--", alpha=0.6)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch (stages concatenated)" if i == 0 else "epoch")
        ax.legend(fontsize=6)
    fig.tight_layout()
    _log_figure(fig, "training_curves.png")
    return fig


def curves_node(rna_ppi, rna_chromosome, wsi_history, *multimodal_histories) -> Figure:
    from gb_kedro.pipelines.multimodal.pipeline import ROWS

    histories = {"rna:ppi": rna_ppi, "rna:chromosome": rna_chromosome, "wsi:wsi": wsi_history}
    histories.update({f"multimodal:{row}": h for row, h in zip(ROWS, multimodal_histories, strict=True)})
    return training_curves(histories)


def build_report(
    table1: pd.DataFrame,
    table2: pd.DataFrame,
    validation: dict,
    enrichment: pd.DataFrame,
    group_table: pd.DataFrame,
    survival_summary: pd.DataFrame,
    survival_tests: pd.DataFrame,
    mice: pd.DataFrame,
    wsi_metrics: dict,
    rna_metrics_ppi: dict,
    gradcam_png: bytes,
    km_png: bytes,
    curves_png: bytes,
    tsne_ppi_png: bytes,
    tsne_chromosome_png: bytes,
    confusion_png: bytes,
    qc_pngs: dict,
    options: dict,
) -> str:
    """One self-contained HTML page with every table and figure of the run."""
    def img(png: bytes, alt: str) -> str:
        return f'<img src="{rep.png_data_uri(png)}" alt="{html.escape(alt)}">'

    def note(text: str) -> str:
        return f'<p class="note">{html.escape(text)}</p>'

    def with_ci(row, name):
        return f"{row[name]:.3f} ({row[name + '_ci_low']:.3f}-{row[name + '_ci_high']:.3f})"

    t1 = pd.DataFrame({
        "configuration": table1["configuration"], "split": table1["split"],
        "patient accuracy (95% CI)": [with_ci(r, "patient_accuracy") for _, r in table1.iterrows()],
        "lineage accuracy (95% CI)": [with_ci(r, "lineage_accuracy") for _, r in table1.iterrows()],
        "lineage balanced": table1["lineage_balanced_accuracy"], "errors within patient": table1["errors_within_patient"],
    })
    first = table1.iloc[0]
    sections = [
        ("Table 1: WSI patch -> RNA retrieval", rep.table_html(t1) + note(
            f"Split mode: {first['split']}; {int(first['n_patches'])} held-out patches from {int(first['n_slides'])} slides; "
            f"{int(first['n_candidates'])} candidate RNA samples; chance: lineage {first['lineage_chance']:.3f}, patient {first['patient_chance']:.3f}. "
            "Intervals: 95 % bootstrap over slides. Image-only (WSI encoder 1-NN) lineage accuracy: "
            f"{wsi_metrics.get('model_accuracy', float('nan')):.3f} (colour 1-NN {wsi_metrics.get('colour_baseline_accuracy', float('nan')):.3f}).")
         + img(confusion_png, "retrieval confusion")),
        ("Table 2: Grad-CAM genes", rep.table_html(table2) + img(gradcam_png, "Grad-CAM") + rep.table_html(group_table)),
    ]
    if validation:
        v = pd.DataFrame([
            {"ranking": "Grad-CAM (Table 2)", "precision": validation["gradcam_precision"], "recall": validation["gradcam_recall"]},
            {"ranking": "expression variance", "precision": validation["variance_precision"], "recall": validation["variance_recall"]},
            {"ranking": "random (expected)", "precision": validation["random_precision_expected"], "recall": float("nan")},
            {"ranking": f"permutation null, mean ({validation['n_permutations']} shuffles)", "precision": validation["permutation_null_mean"], "recall": float("nan")},
            {"ranking": "permutation null, 95th percentile", "precision": validation["permutation_null_p95"], "recall": float("nan")},
        ])
        sections.append((f"Planted drivers recovered (precision@{validation['table_size']})", rep.table_html(v) + note(
            f"{validation['n_drivers_planted']} planted driver genes among {validation['n_genes']}; permutation p = {validation['permutation_p_value']:.3f}. "
            "Read only on the embedded cohort (synthetic_truth).")))
    sig = enrichment[enrichment["significant"]] if len(enrichment) else enrichment
    sections.append(("Gene-set enrichment of the top Grad-CAM genes", (rep.table_html(sig.drop(columns=["genes"]).head(30)) if len(sig) else "<p>No significant gene set.</p>")
                     + note(f"{len(enrichment)} sets tested (hypergeometric, Benjamini-Hochberg).")))
    sections.append(("Aggressiveness: lineage clusters and survival", img(km_png, "Kaplan-Meier") + rep.table_html(survival_summary) + rep.table_html(survival_tests)
                     + note(f"Mouse-level lineage retrieval (majority vote of a mouse's patches): {mice['majority_correct'].mean():.3f} over {len(mice)} mice.")))
    sections.append(("Fig. 5: t-SNE of RNA embeddings", img(tsne_ppi_png, "t-SNE PPI") + img(tsne_chromosome_png, "t-SNE chromosome") + note(
        f"PPI groups: 5-NN held-out TCGA site accuracy {rna_metrics_ppi.get('knn_site_accuracy_encoder', float('nan')):.3f} "
        f"(PCA {rna_metrics_ppi.get('knn_site_accuracy_pca', float('nan')):.3f}); cohort nearest to brain {rna_metrics_ppi.get('cohort_nearest_brain_fraction_encoder', float('nan')):.0%}.")))
    sections.append(("Training curves", img(curves_png, "training curves")))
    n_qc = int(options.get("report_qc_slides", 6))
    qc = "".join(img(png, name) for name, png in list(qc_pngs.items())[:n_qc])
    sections.append(("Slide QC: kept tumour patches outlined", f'<div class="grid">{qc}</div>'))
    return rep.render_report(sections, "gb-kedro report")

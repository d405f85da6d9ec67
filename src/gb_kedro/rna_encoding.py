"""Training and evaluating the RNA encoder (paper 2.2, eq. 2-5, Fig. 5).

Two stages with the same loss, L = w_r * L_r (eq. 2) + w_c * L_c (eq. 3-4):

1. **TCGA pretraining**: no lineages, so the positive of a sample is a second view of it with a different
   masked group; a validation part drives early stopping.
2. **Cohort**: positives share a lineage. The cohort has ONE RNA sample per lineage, so there too the only
   positives are two differently masked views of the same sample; other samples are negatives.

Lineages held out by the ``lineage`` evaluation split are never trained on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from torch.utils.data import TensorDataset

from gb_kedro.config import RNAEncodingConfig
from gb_kedro.errors import InputDataError
from gb_kedro.losses import multi_positive_info_nce
from gb_kedro.models.rna_mae import RNAMaskedAutoencoder, rna_mae
from gb_kedro.provenance import fingerprint, made_with
from gb_kedro.tracking import git_commit, log_evaluation, log_metrics, log_torch_model, nested_run
from gb_kedro.training import TrainConfig, fit, kept_epoch, resolve_device

logger = logging.getLogger(__name__)


def group_vector(gene_groups: pd.DataFrame, genes: list[str]) -> list[int]:
    """The group index of every model gene (``genes`` = feature columns), from a gene-groups table."""
    by_gene = gene_groups.set_index("gene_id")["group"]
    missing = [g for g in genes if g not in by_gene.index]
    if missing:
        raise InputDataError(
            "gene groups", f"{len(missing)} model gene(s) have no group, e.g. {missing[:3]}: rerun data_engineering"
        )
    return [int(by_gene[g]) for g in genes]


def make_step(temperature: float, recon_weight: float, contrastive_weight: float):
    """The training step: two views of each sample with DIFFERENT masked groups, eq. 2 + eq. 3-4."""

    def step(model: RNAMaskedAutoencoder, batch, device, gather: bool = False) -> dict[str, torch.Tensor]:
        x, labels = (t.to(device) for t in batch)
        g = len(model.group_sizes)
        mask1 = torch.randint(g, (x.shape[0],), device=device)
        mask2 = (mask1 + torch.randint(1, g, (x.shape[0],), device=device)) % g if g > 1 else mask1
        v1, v2 = model(x, mask_idx=mask1), model(x, mask_idx=mask2)
        recon = (v1["recon_full"] + v2["recon_full"]) / 2
        recon_masked = (v1["recon_masked"] + v2["recon_masked"]) / 2
        contrastive = multi_positive_info_nce(
            torch.cat([v1["z"], v2["z"]]), torch.cat([labels, labels]), temperature, gather
        )
        loss = recon_weight * recon + contrastive_weight * contrastive
        return {
            "loss": loss,
            "recon_full": recon.detach(),
            "recon_masked": recon_masked.detach(),
            "contrastive": contrastive.detach(),
        }

    return step


def split_tcga(samples: pd.DataFrame, test_fraction: float, seed: int) -> pd.DataFrame:
    """Held-out TCGA samples for the embedding evaluation, stratified by primary site."""
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=samples.index)
    for _, part in samples.groupby("primary_site"):
        k = int(round(test_fraction * len(part)))
        if k and len(part) > 1:
            split[rng.choice(part.index, size=min(k, len(part) - 1), replace=False)] = "test"
    return pd.DataFrame(
        {
            "sample_id": samples["sample_id"].to_numpy(),
            "primary_site": samples["primary_site"].to_numpy(),
            "split": split.to_numpy(),
        }
    )


def build_model(group_of_gene: list[int], cfg: RNAEncodingConfig) -> RNAMaskedAutoencoder:
    return rna_mae(group_of_gene, cfg.model.preset)


@torch.no_grad()
def embed(
    model: RNAMaskedAutoencoder, features: np.ndarray, batch_size: int, device: str | torch.device = "cpu"
) -> np.ndarray:
    """CLS embeddings of unmasked inputs: [N, n_genes] -> [N, D]."""
    model.eval().to(device)
    out = [
        model.forward_features(torch.tensor(features[i : i + batch_size], device=device))[0].float().cpu()  # a copy
        for i in range(0, len(features), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.dim), np.float32)


def knn_accuracy(train_x, train_y, test_x, test_y, k: int) -> float:
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_x))).fit(train_x, train_y)
    return float((clf.predict(test_x) == np.asarray(test_y)).mean())


def nearest_site_fraction(reference_x, reference_sites, query_x, site: str, k: int) -> float:
    """Fraction of queries whose k nearest reference samples are mostly of ``site``."""
    nn = NearestNeighbors(n_neighbors=min(k, len(reference_x))).fit(reference_x)
    _, idx = nn.kneighbors(query_x)
    votes = (np.asarray(reference_sites)[idx] == site).mean(axis=1)
    return float((votes > 0.5).mean())


def tsne_figure(tcga_x, tcga_sites, cohort_x, title: str, seed: int, perplexity: float) -> Figure:
    """Fig. 5: t-SNE of TCGA (circles, coloured by primary site) and cohort (stars) embeddings."""
    both = np.vstack([tcga_x, cohort_x])
    coords = TSNE(
        n_components=2, perplexity=min(perplexity, (len(both) - 1) / 3), random_state=seed, init="pca"
    ).fit_transform(both)
    fig = Figure(figsize=(7, 6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    sites = np.asarray(tcga_sites)
    cmap = matplotlib.colormaps["tab10"]
    for k, site in enumerate(sorted(set(sites))):
        sel = sites == site
        ax.scatter(
            coords[: len(tcga_x)][sel, 0],
            coords[: len(tcga_x)][sel, 1],
            s=12,
            alpha=0.7,
            color=cmap(k % 10),
            label=f"TCGA {site}",
        )
    ax.scatter(
        coords[len(tcga_x) :, 0],
        coords[len(tcga_x) :, 1],
        marker="*",
        s=160,
        color="black",
        edgecolor="gold",
        label="cohort",
    )
    ax.legend(fontsize=7, loc="best", markerscale=1.0)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def evaluate_embeddings(
    embeddings: pd.DataFrame,
    tcga_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    tcga_split: pd.DataFrame,
    k: int,
    site: str = "brain",
) -> dict:
    """The numbers behind Fig. 5: 5-NN primary-site accuracy of held-out TCGA embeddings, the same for
    PCA of the input at the same width, and the fraction of cohort samples nearest to brain TCGA."""
    emb = embeddings.set_index("sample_id")
    cols = [c for c in emb.columns if c.startswith("e")]
    split = tcga_split.set_index("sample_id")
    train_ids = split.index[split["split"] == "train"]
    test_ids = split.index[split["split"] == "test"]
    cohort_ids = emb.index[emb["source"] == "cohort"]
    sites = split["primary_site"]
    width = len(cols)
    pca = PCA(n_components=min(width, len(train_ids) - 1, tcga_features.shape[1]), random_state=0).fit(
        tcga_features.loc[train_ids].to_numpy()
    )
    pca_tcga = pd.DataFrame(pca.transform(tcga_features.loc[split.index].to_numpy()), index=split.index)
    metrics = {
        "knn_site_accuracy_encoder": knn_accuracy(
            emb.loc[train_ids, cols], sites[train_ids], emb.loc[test_ids, cols], sites[test_ids], k
        ),
        "knn_site_accuracy_pca": knn_accuracy(
            pca_tcga.loc[train_ids], sites[train_ids], pca_tcga.loc[test_ids], sites[test_ids], k
        ),
        "cohort_nearest_brain_fraction_encoder": nearest_site_fraction(
            emb.loc[split.index, cols], sites, emb.loc[cohort_ids, cols], site, k
        ),
        "cohort_nearest_brain_fraction_pca": nearest_site_fraction(
            pca_tcga, sites, pca.transform(cohort_features.to_numpy()), site, k
        ),
        "k": k,
        "width": width,
        "tcga_train": int(len(train_ids)),
        "tcga_test": int(len(test_ids)),
        "cohort_samples": int(len(cohort_ids)),
    }
    return metrics


def _stage_datasets(tcga_features, cohort_features, cohort_samples, tcga_split, lineage_split, cfg: RNAEncodingConfig):
    """(stage name, training set, validation set) of the two stages: TCGA pretraining (held-out TCGA samples
    excluded, a validation part drawn), then the cohort (held-out lineages excluded) with the TCGA training
    samples replayed beside it (each its own label) so the small cohort does not pull the space away."""

    def dataset(x, labels):
        return TensorDataset(torch.from_numpy(x), torch.as_tensor(labels, dtype=torch.long))

    x_tcga = tcga_features.loc[tcga_split.loc[tcga_split["split"] == "train", "sample_id"]].to_numpy(np.float32)
    val_mask = np.random.default_rng(cfg.seed).random(len(x_tcga)) < cfg.pretrain.val_fraction
    held = set(lineage_split.loc[lineage_split["split"] == "test", "lineage_id"])
    cohort = cohort_samples[~cohort_samples["lineage_id"].isin(held)]
    x_cohort = cohort_features.loc[cohort["sample_id"]].to_numpy(np.float32)
    lineage_codes = pd.factorize(cohort["lineage_id"])[0]
    if cfg.cohort.replay_tcga:
        x_stage2 = np.vstack([x_cohort, x_tcga[~val_mask]])
        y_stage2 = np.concatenate([lineage_codes, lineage_codes.max(initial=-1) + 1 + np.arange((~val_mask).sum())])
    else:
        x_stage2, y_stage2 = x_cohort, lineage_codes
    return held, [
        (
            "pretrain",
            dataset(x_tcga[~val_mask], np.arange((~val_mask).sum())),
            dataset(x_tcga[val_mask], np.arange(val_mask.sum())) if val_mask.any() else None,
        ),
        ("cohort", dataset(x_stage2, y_stage2), None),
    ]


def train_encoder(
    tcga_features,
    cohort_features,
    cohort_samples,
    gene_groups,
    tcga_split,
    lineage_split,
    cfg: RNAEncodingConfig,
    variant: str,
) -> tuple[RNAMaskedAutoencoder, pd.DataFrame]:
    """Pretrain on TCGA, then continue on the cohort, in a nested MLflow run ``rna_encoding.<variant>``.

    Returns the model (``meta``: variant, gene order, MLflow run) and the per-epoch history of both stages."""
    genes = list(tcga_features.columns)
    torch.manual_seed(cfg.seed)
    model = build_model(group_vector(gene_groups, genes), cfg)
    step = make_step(cfg.loss.temperature, cfg.loss.recon_weight, cfg.loss.contrastive_weight)
    held, stages = _stage_datasets(tcga_features, cohort_features, cohort_samples, tcga_split, lineage_split, cfg)
    history, epochs_run = [], 0
    params = {
        "variant": variant,
        "n_genes": len(genes),
        "group_sizes": model.group_sizes,
        "held_out_lineages": sorted(held),
        **{k: v for k, v in cfg.to_dict().items() if k != "checkpoint_dir"},
    }
    with nested_run(f"rna_encoding.{variant}", params) as run:
        for stage, train_set, val_set in stages:
            config = TrainConfig.of(getattr(cfg, stage), cfg.seed, cfg.device)
            result = fit(
                model,
                train_set,
                val_set,
                step,
                config,
                checkpoint_dir=Path(cfg.checkpoint_dir) / f"rna_{variant}" / stage,
                on_epoch=lambda epoch, metrics, stage=stage: log_metrics(
                    run, {f"{stage}/{k}": v for k, v in metrics.items() if k != "epoch"}, step=epoch
                ),
                desc=f"rna {variant} {stage}",
                fingerprint=fingerprint(
                    model.config_dict(), config.to_dict(), cfg.loss.to_dict(), stage, train_set.tensors[0].numpy()
                ),
            )
            history.extend({"stage": stage, **h} for h in result["history"])
            epochs_run += result["epochs_run"]
            logger.info(
                "rna_encoding.%s %s: %d epochs (%s), device %s",
                variant,
                stage,
                len(result["history"]),
                kept_epoch(result, config.keep),
                result["device"],
            )
        model.cpu().eval().describe(
            variant=variant,
            genes=genes,
            training={
                "preset": cfg.model.preset,
                "pretrain_epochs": cfg.pretrain.epochs,
                "cohort_epochs": cfg.cohort.epochs,
            },
            mlflow_run_id=run.info.run_id if run is not None else None,
        )
        if epochs_run:  # a resumed, finished training is the model already registered
            description = (
                f"RNA encoder (gene-group masked autoencoder + contrastive loss), {variant} gene groups, {len(genes)} genes; "
                f"pretrained on {len(stages[0][1])} TCGA samples, continued on the cohort (held-out lineages excluded)"
            )
            log_torch_model(
                run,
                model,
                f"gb_kedro.rna_encoder.{variant}",
                description,
                {
                    "grouping": variant,
                    "split": made_with(lineage_split).get("split", {}).get("mode"),
                    "commit": git_commit(),
                },
            )
    return model, pd.DataFrame(history)


def embed_samples(
    model: RNAMaskedAutoencoder, tcga_features: pd.DataFrame, cohort_features: pd.DataFrame, cfg: RNAEncodingConfig
) -> pd.DataFrame:
    """CLS embeddings of every TCGA and cohort sample: ``sample_id``, ``source``, ``e0`` ... ``e{D-1}``."""
    device = resolve_device(cfg.device)
    frames = []
    for source, features in (("tcga", tcga_features), ("cohort", cohort_features)):
        z = embed(model, features[model.meta["genes"]].to_numpy(np.float32), cfg.embed_batch_size, device=device)
        frame = pd.DataFrame(z, columns=[f"e{i}" for i in range(z.shape[1])])
        frame.insert(0, "source", source)
        frame.insert(0, "sample_id", features.index.to_numpy())
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fig5(
    embeddings: pd.DataFrame,
    model: RNAMaskedAutoencoder,
    tcga_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    tcga_split: pd.DataFrame,
    cfg: RNAEncodingConfig,
) -> tuple[dict, Figure]:
    """Fig. 5 (t-SNE) and its numbers; logged to the variant's MLflow run too."""
    variant = model.meta["variant"]
    metrics = evaluate_embeddings(embeddings, tcga_features, cohort_features, tcga_split, k=cfg.knn_k)
    metrics["variant"] = variant
    emb = embeddings.set_index("sample_id")
    cols = [c for c in emb.columns if c.startswith("e")]
    sites = tcga_split.set_index("sample_id")["primary_site"]
    tcga_ids = emb.index[emb["source"] == "tcga"]
    figure = tsne_figure(
        emb.loc[tcga_ids, cols].to_numpy(),
        sites.loc[tcga_ids].to_numpy(),
        emb.loc[emb["source"] == "cohort", cols].to_numpy(),
        f"RNA encoder ({variant} groups): {cfg.knn_k}-NN site accuracy {metrics['knn_site_accuracy_encoder']:.2f} "
        f"(PCA {metrics['knn_site_accuracy_pca']:.2f}); cohort near brain {metrics['cohort_nearest_brain_fraction_encoder']:.0%}",
        seed=cfg.tsne.seed,
        perplexity=cfg.tsne.perplexity,
    )
    log_evaluation(
        f"rna_encoding.{variant}", model.meta.get("mlflow_run_id"), metrics, figure, f"rna_tsne_{variant}.png"
    )
    logger.info("rna_encoding.%s: %s", variant, {k_: v for k_, v in metrics.items() if isinstance(v, float)})
    return metrics, figure

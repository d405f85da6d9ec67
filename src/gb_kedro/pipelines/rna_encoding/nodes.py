"""Nodes of the ``rna_encoding`` pipeline; the logic lives in :mod:`gb_kedro.rna_encoding`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from gb_kedro import rna_encoding as rna
from gb_kedro.models.rna_mae import RNAMaskedAutoencoder
from gb_kedro.tracking import log_evaluation, log_metrics, log_torch_model, nested_run
from gb_kedro.training import TrainConfig, fingerprint, fit, resolve_device

logger = logging.getLogger(__name__)


def split_tcga_samples(tcga_samples: pd.DataFrame, options: dict) -> pd.DataFrame:
    """TCGA samples held out of pretraining (stratified by primary site) to evaluate the embeddings."""
    return rna.split_tcga(tcga_samples, options.get("tcga_test_fraction", 0.2), options.get("seed", 0))


def train_rna_encoder(
    tcga_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    cohort_samples: pd.DataFrame,
    gene_groups: pd.DataFrame,
    tcga_split: pd.DataFrame,
    lineage_split: pd.DataFrame,
    options: dict,
    variant: dict,
) -> tuple[dict, pd.DataFrame]:
    """Pretrain on TCGA (held-out samples excluded), then continue on the cohort (held-out lineages
    excluded), in a nested MLflow run named ``rna_encoding.<variant>``.

    Returns the model bundle (``config``, ``state_dict``, ``variant``, MLflow run ID) and the per-epoch
    history of both stages.
    """
    name = variant["name"]
    genes = list(tcga_features.columns)
    groups = rna.group_vector(gene_groups, genes)
    seed = int(options.get("seed", 0))
    torch.manual_seed(seed)
    model = rna.build_model(groups, options)
    loss = options.get("loss", {})
    step = rna.make_step(loss.get("temperature", 0.1), loss.get("recon_weight", 1.0), loss.get("contrastive_weight", 1.0))
    device = options.get("device", "auto")

    train_ids = tcga_split.loc[tcga_split["split"] == "train", "sample_id"]
    x_tcga = tcga_features.loc[train_ids].to_numpy(np.float32)
    rng = np.random.default_rng(seed)
    val_mask = rng.random(len(x_tcga)) < options["pretrain"].get("val_fraction", 0.1)
    held = set(lineage_split.loc[lineage_split["split"] == "test", "lineage_id"])
    cohort = cohort_samples[~cohort_samples["lineage_id"].isin(held)]
    x_cohort = cohort_features.loc[cohort["sample_id"]].to_numpy(np.float32)
    lineage_codes = pd.factorize(cohort["lineage_id"])[0]
    ckpt_root = Path(options.get("checkpoint_dir", "data/06_models/checkpoints")) / f"rna_{name}"

    def dataset(x, labels):
        return TensorDataset(torch.from_numpy(x), torch.as_tensor(labels, dtype=torch.long))

    history = []
    params = {"variant": name, "n_genes": len(genes), "group_sizes": model.group_sizes, "held_out_lineages": sorted(held), **{k: v for k, v in options.items() if k != "checkpoint_dir"}}
    with nested_run(f"rna_encoding.{name}", params) as run:
        # Stage 2 replays the TCGA training samples beside the cohort (each its own label) so that the
        # small cohort does not pull the embedding space away from what pretraining learned.
        replay = bool(options["cohort"].get("replay_tcga", True))
        x_stage2 = np.vstack([x_cohort, x_tcga[~val_mask]]) if replay else x_cohort
        y_stage2 = np.concatenate([lineage_codes, lineage_codes.max(initial=-1) + 1 + np.arange((~val_mask).sum())]) if replay else lineage_codes
        stages = [
            ("pretrain", dataset(x_tcga[~val_mask], np.arange((~val_mask).sum())), dataset(x_tcga[val_mask], np.arange(val_mask.sum())) if val_mask.any() else None),
            ("cohort", dataset(x_stage2, y_stage2), None),
        ]
        for stage, train_set, val_set in stages:
            config = TrainConfig.from_dict({**options[stage], "seed": seed, "device": device})
            result = fit(
                model, train_set, val_set, step, config, checkpoint_dir=ckpt_root / stage,
                on_epoch=lambda epoch, metrics, stage=stage: log_metrics(run, {f"{stage}/{k}": v for k, v in metrics.items() if k != "epoch"}, step=epoch),
                desc=f"rna {name} {stage}",
                fingerprint=fingerprint(model.config_dict(), config.__dict__, loss, stage, train_set.tensors[0].numpy()),
            )
            history.extend({"stage": stage, **h} for h in result["history"])
            logger.info("rna_encoding.%s %s: %d epochs, best epoch %d, device %s", name, stage, len(result["history"]), result["best_epoch"], result["device"])
        model.cpu().eval()
        bundle = {"config": model.config_dict(), "state_dict": model.state_dict(), "variant": name, "genes": genes,
                  "mlflow_run_id": run.info.run_id if run is not None else None}
        log_torch_model(run, model, registered_name=f"gb_kedro.rna_encoder.{name}")
    return bundle, pd.DataFrame(history)


def load_rna_encoder(bundle: dict) -> RNAMaskedAutoencoder:
    model = RNAMaskedAutoencoder.from_config(bundle["config"])
    model.load_state_dict(bundle["state_dict"])
    return model.eval()


def embed_rna(bundle: dict, tcga_features: pd.DataFrame, cohort_features: pd.DataFrame, options: dict) -> pd.DataFrame:
    """CLS embeddings of every TCGA and cohort sample: ``sample_id``, ``source``, ``e0`` ... ``e{D-1}``."""
    model = load_rna_encoder(bundle)
    device = resolve_device(options.get("device", "auto"))
    frames = []
    for source, features in (("tcga", tcga_features), ("cohort", cohort_features)):
        z = rna.embed(model, features[bundle["genes"]].to_numpy(np.float32), device=device)
        frame = pd.DataFrame(z, columns=[f"e{i}" for i in range(z.shape[1])])
        frame.insert(0, "source", source)
        frame.insert(0, "sample_id", features.index.to_numpy())
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def evaluate_rna_embeddings(
    embeddings: pd.DataFrame,
    bundle: dict,
    tcga_features: pd.DataFrame,
    cohort_features: pd.DataFrame,
    tcga_split: pd.DataFrame,
    options: dict,
):
    """Fig. 5 (t-SNE) and its numbers; logged to the variant's MLflow run too."""
    k = int(options.get("knn_k", 5))
    metrics = rna.evaluate_embeddings(embeddings, tcga_features, cohort_features, tcga_split, k=k)
    metrics["variant"] = bundle["variant"]
    emb = embeddings.set_index("sample_id")
    cols = [c for c in emb.columns if c.startswith("e")]
    sites = tcga_split.set_index("sample_id")["primary_site"]
    tcga_ids = emb.index[emb["source"] == "tcga"]
    tsne = options.get("tsne", {})
    figure = rna.tsne_figure(
        emb.loc[tcga_ids, cols].to_numpy(), sites.loc[tcga_ids].to_numpy(), emb.loc[emb["source"] == "cohort", cols].to_numpy(),
        f"RNA encoder ({bundle['variant']} groups): 5-NN site accuracy {metrics['knn_site_accuracy_encoder']:.2f} "
        f"(PCA {metrics['knn_site_accuracy_pca']:.2f}); cohort near brain {metrics['cohort_nearest_brain_fraction_encoder']:.0%}",
        seed=int(tsne.get("seed", 0)), perplexity=float(tsne.get("perplexity", 30)),
    )
    log_evaluation(f"rna_encoding.{bundle['variant']}", bundle.get("mlflow_run_id"), metrics, figure, f"rna_tsne_{bundle['variant']}.png")
    logger.info("rna_encoding.%s: %s", bundle["variant"], {k_: v for k_, v in metrics.items() if isinstance(v, float)})
    return metrics, figure

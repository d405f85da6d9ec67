"""Training and evaluating the multimodal model (paper 2.4-2.5, eq. 7-9, Table 1).

Pairs: every training WSI patch with the RNA sample of its lineage; batches hold P lineages x K patches,
so every anchor has positives (same lineage) and negatives. The loss is

    L = w_itc * L_itc (eq. 7-8) + w_itm * L_itm (matching, hard negatives) + w_rec * L_rec (RNA decoder)

Retrieval (eq. 9): a held-out patch's projected image CLS against the projected RNA CLS of every cohort RNA
sample (cosine); the predicted sample is the argmax; its lineage and patient are scored.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from gb_kedro.losses import cross_modal_info_nce, sample_hard_negatives
from gb_kedro.models.multimodal import MultimodalModel
from gb_kedro.slides.augment import Augment
from gb_kedro.wsi_encoding import training_view, windows

logger = logging.getLogger(__name__)


class PairDataset(Dataset):
    """Decoded patches paired with their lineage's RNA vector: items ``(image [3, S, S], rna [G], label)``.

    ``rna_of_label[label]`` holds the RNA vectors of that lineage ([k, n_genes]; one sample per lineage in
    the paper, a random one of them per item otherwise). ``crop``: random ``crop``-px windows in training,
    the centre window without ``augment``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, rna_of_label: list[np.ndarray], augment: Augment | None = None, crop: int | None = None):
        self.images, self.labels, self.augment, self.crop = images, np.asarray(labels), augment, crop
        self.rna_of_label = [torch.as_tensor(np.atleast_2d(r), dtype=torch.float32) for r in rna_of_label]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = training_view(self.images[i], self.crop, self.augment)
        label = int(self.labels[i])
        options = self.rna_of_label[label]
        rna = options[int(torch.randint(len(options), (1,)))] if len(options) > 1 else options[0]
        return x, rna, label


class MultimodalStep:
    """One training step: ITC (eq. 7-8) + ITM with hard negatives + RNA reconstruction from the fusion.

    For the matching head (ALBEF): the N positive pairs, then for each image a negative RNA and for each
    RNA a negative image, drawn from the contrastive similarities (harder = more likely, positives never).
    With ``mask_rna`` one gene group of each RNA input is masked (as in RNA pretraining) and with
    ``gene_dropout`` a share of the gene values is set to 0 (the authors' release masks 30 % of the values):
    the RNA side's augmentations when a lineage has one sample. The decoder reconstructs the intact vector;
    ``recon_masked`` is its error on the masked group.
    """

    def __init__(self, temperature: float, itc_weight: float = 1.0, itm_weight: float = 1.0, recon_weight: float = 0.0, mask_rna: bool = True, gene_dropout: float = 0.0):
        self.temperature, self.itc_weight, self.itm_weight, self.recon_weight, self.mask_rna = temperature, itc_weight, itm_weight, recon_weight, mask_rna
        self.gene_dropout = gene_dropout

    def __call__(self, model: MultimodalModel, batch, device) -> dict[str, torch.Tensor]:
        images, rna, labels = (t.to(device) for t in batch)
        n = images.shape[0]
        g = len(model.rna_encoder.group_sizes)
        mask_idx = torch.randint(g, (n,), device=device) if self.mask_rna and g > 1 else None
        rna_in = rna
        if self.gene_dropout and model.training:  # the authors' RNA augmentation: a share of gene values set to 0 (the TCGA mean)
            rna_in = rna * (torch.rand_like(rna) >= self.gene_dropout)
        out = model(images, rna_in, mask_idx)
        itc = cross_modal_info_nce(out["z_img"], out["z_rna"], labels, labels, self.temperature)
        positives = labels[:, None] == labels[None, :]
        sim = out["z_img"].float() @ out["z_rna"].float().T / self.temperature
        neg_rna = sample_hard_negatives(sim, positives)
        neg_img = sample_hard_negatives(sim.T, positives.T)
        fused_neg = torch.cat([
            model.forward_fusion(out["rna_tokens"][neg_rna], out["image_tokens"]),   # image i + a negative RNA
            model.forward_fusion(out["rna_tokens"], out["image_tokens"][neg_img]),   # RNA i + a negative image
        ])
        logits = torch.cat([out["itm_logits"], model.forward_head(fused_neg)]).float()
        targets = torch.cat([torch.ones(n, dtype=torch.long, device=device), torch.zeros(2 * n, dtype=torch.long, device=device)])
        itm = F.cross_entropy(logits, targets)
        err = (out["recon"].float() - rna.float()) ** 2
        recon = err.mean()
        metrics = {"itc": itc.detach(), "itm": itm.detach(), "recon": recon.detach(),
                   "itm_accuracy": (logits.argmax(1) == targets).float().mean().detach()}
        if mask_idx is not None:
            m = model.rna_encoder.group_mask(mask_idx).float()
            metrics["recon_masked"] = ((err * m).sum() / m.sum().clamp(min=1.0)).detach()
        loss = self.itc_weight * itc + self.itm_weight * itm + (self.recon_weight * recon if self.recon_weight else 0.0)
        return {"loss": loss, **metrics}


@torch.no_grad()
def embed_images(model: MultimodalModel, images: np.ndarray, crop: int | None = None, batch_size: int = 128, device="cpu") -> np.ndarray:
    """Projected image embeddings of uint8 patches [N, 3, S, S] -> [N, E], L2-normalised (the mean over
    the ``crop`` windows of a patch, then normalised)."""
    model.eval().to(device)
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.asarray(images[i : i + batch_size])).float().div_(255.0).to(device)
        z = torch.stack([model.encode_image(w)[0].float() for w in windows(x, crop)]).mean(0)
        out.append(F.normalize(z, dim=-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.embed_dim), np.float32)


@torch.no_grad()
def embed_rna(model: MultimodalModel, rna: np.ndarray, batch_size: int = 256, device="cpu") -> np.ndarray:
    """Projected RNA embeddings (no masking) [N, n_genes] -> [N, E], L2-normalised."""
    model.eval().to(device)
    out = [model.encode_rna(torch.as_tensor(rna[i : i + batch_size], dtype=torch.float32, device=device))[0].float().cpu() for i in range(0, len(rna), batch_size)]
    return torch.cat(out).numpy()


def retrieval(image_z: np.ndarray, rna_z: np.ndarray, top: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 9: cosine similarity of every image embedding to every RNA embedding [Ni, Nr] and, per image,
    the indices of the ``top`` most similar RNA samples (best first) [Ni, top]."""
    a = image_z / np.linalg.norm(image_z, axis=1, keepdims=True).clip(1e-12)
    b = rna_z / np.linalg.norm(rna_z, axis=1, keepdims=True).clip(1e-12)
    sim = a @ b.T
    return sim, np.argsort(-sim, axis=1, kind="stable")[:, :top]


def _ci(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    return float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2))


def retrieval_metrics(
    ranked: np.ndarray,
    true_lineage,
    slide_id,
    candidate_lineage,
    patient_of: dict,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Scores of a retrieval: ``ranked`` [N, k] candidate indices per held-out patch, best first.

    Lineage accuracy (predicted sample's lineage == the patch's), patient accuracy (its patient), mean
    per-lineage (balanced) accuracy, top-k lineage accuracy, chance levels of a uniformly random pick, the
    share of errors that stay within the true patient, and 95 % bootstrap intervals that resample SLIDES
    (patches of one slide are not independent).
    """
    true_lineage = np.asarray(true_lineage)
    candidate_lineage = np.asarray(candidate_lineage)
    slide_id = np.asarray(slide_id)
    pred = candidate_lineage[ranked[:, 0]]
    lineage_hit = pred == true_lineage
    true_patient = np.array([patient_of[x] for x in true_lineage])
    pred_patient = np.array([patient_of[x] for x in pred])
    patient_hit = pred_patient == true_patient
    top_hit = (candidate_lineage[ranked] == true_lineage[:, None]).any(axis=1)
    cand_patients = np.array([patient_of[x] for x in candidate_lineage])
    wrong = ~lineage_hit
    metrics = {
        "n_patches": int(len(true_lineage)),
        "n_slides": int(len(np.unique(slide_id))),
        "n_candidates": int(len(candidate_lineage)),
        "lineage_accuracy": float(lineage_hit.mean()),
        "patient_accuracy": float(patient_hit.mean()),
        "lineage_balanced_accuracy": float(pd.Series(lineage_hit).groupby(true_lineage).mean().mean()),
        f"lineage_top{ranked.shape[1]}_accuracy": float(top_hit.mean()),
        "lineage_chance": float(np.mean([(candidate_lineage == t).mean() for t in true_lineage])),
        "patient_chance": float(np.mean([(cand_patients == p).mean() for p in true_patient])),
        "errors_within_patient": float(patient_hit[wrong].mean()) if wrong.any() else float("nan"),
    }
    rng = np.random.default_rng(seed)
    slides, inverse = np.unique(slide_id, return_inverse=True)
    hits = np.stack([lineage_hit, patient_hit]).astype(float)
    per_slide_sum = np.stack([np.bincount(inverse, weights=h, minlength=len(slides)) for h in hits])
    per_slide_n = np.bincount(inverse, minlength=len(slides)).astype(float)
    draws = rng.integers(len(slides), size=(n_boot, len(slides)))
    counts = np.stack([np.bincount(d, minlength=len(slides)) for d in draws]).astype(float)  # [B, S] times each slide drawn
    boot = (counts @ per_slide_sum.T) / (counts @ per_slide_n)[:, None]  # [B, 2]
    for j, name in enumerate(("lineage_accuracy", "patient_accuracy")):
        metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = _ci(boot[:, j])
    return metrics


def colour_baseline_retrieval(train_colour: np.ndarray, train_rna: np.ndarray, test_colour: np.ndarray, candidate_rna: np.ndarray, top: int = 5, seed: int = 0):
    """The non-deep row of Table 1: per-patch colour statistics -> RNA vector by a ridge map fit on the
    training pairs (alpha by cross-validation); a held-out patch retrieves the candidate RNA samples by
    cosine between its predicted RNA vector and theirs (both centred on the candidates' mean).

    Returns (ranked [N, top], fitted model)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    centre = candidate_rna.mean(axis=0)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    model.fit(train_colour, train_rna - centre)
    predicted = model.predict(test_colour)
    _, ranked = retrieval(predicted, candidate_rna - centre, top=min(top, len(candidate_rna)))
    return ranked, model


def table1(rows: list[dict]) -> pd.DataFrame:
    """Table 1's layout: one row per configuration; patient and lineage accuracy with 95 % intervals,
    then the extra columns (balanced, top-5, chance, errors within the patient)."""
    frame = pd.DataFrame(rows)
    first = ["configuration", "split", "patient_accuracy", "lineage_accuracy"]
    return frame[first + [c for c in frame.columns if c not in first]]


def table1_markdown(table: pd.DataFrame) -> str:
    """Markdown of Table 1: accuracy (95 % CI) cells."""
    def cell(row, name):
        return f"{row[name]:.3f} ({row[name + '_ci_low']:.3f}-{row[name + '_ci_high']:.3f})"

    top_col = next((c for c in table.columns if c.startswith("lineage_top")), None)
    header = ["Configuration", "Patient accuracy (95% CI)", "Lineage accuracy (95% CI)", "Lineage balanced", top_col.replace("lineage_", "Lineage ").replace("_accuracy", "") if top_col else "", "Errors within patient"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join([
            str(row["configuration"]), cell(row, "patient_accuracy"), cell(row, "lineage_accuracy"),
            f"{row['lineage_balanced_accuracy']:.3f}", f"{row[top_col]:.3f}" if top_col else "",
            "" if pd.isna(row["errors_within_patient"]) else f"{row['errors_within_patient']:.3f}",
        ]) + " |")
    first = table.iloc[0]
    lines.append("")
    lines.append(f"Split: **{first['split']}** ({int(first['n_patches'])} held-out patches from {int(first['n_slides'])} slides, "
                 f"{int(first['n_candidates'])} candidate RNA samples). Chance: patient {first['patient_chance']:.3f}, "
                 f"lineage {first['lineage_chance']:.3f}. Intervals: 95 % bootstrap over slides.")
    return "\n".join(lines) + "\n"

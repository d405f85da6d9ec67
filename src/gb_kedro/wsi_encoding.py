"""Training and evaluating the WSI patch encoder (paper 2.3, eq. 6).

The ViT's CLS embedding (L2-normalised) is trained with a batch-hard triplet loss across lineages on
batches of P lineages x K patches. Batch-hard triplet from scratch can collapse (every embedding equal,
loss = margin), so the first ``warmup_epochs`` train a lineage softmax head instead (cross-entropy); the
triplet stage then starts from separated embeddings (``ce_weight`` keeps some softmax after warm-up). The
mean distance between a batch's embeddings (``spread``) is logged to show there is no collapse.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gb_kedro.losses import batch_hard_triplet
from gb_kedro.slides.augment import Augment
from gb_kedro.slides.dataset import PatchDataset
from gb_kedro.slides.manifest import slide_paths
from gb_kedro.training import fingerprint

logger = logging.getLogger(__name__)


def read_patches(index: pd.DataFrame, slide_paths: dict, output_size: int, num_workers: int = 0, cache: str = "ram", cache_path: str | Path | None = None) -> np.ndarray:
    """Decode the patches of ``index`` once: uint8 ``[N, 3, S, S]`` (``cache: disk`` keeps them in a
    ``.npy`` memory map at ``cache_path`` and reuses it when it matches)."""
    if cache == "disk" and cache_path is not None and Path(cache_path).exists():
        cached = np.load(cache_path, mmap_mode="r")
        if cached.shape == (len(index), 3, output_size, output_size):
            return cached
    data = PatchDataset(index, slide_paths, output_size=output_size)
    out = np.empty((len(index), 3, output_size, output_size), np.uint8)
    loader = DataLoader(data, batch_size=64, num_workers=num_workers)
    i = 0
    for images, _ in tqdm(loader, desc="Reading patches", unit="batch", leave=False):
        out[i : i + len(images)] = (images * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
        i += len(images)
    if cache == "disk" and cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        np.save(cache_path, out)
    return out


def patch_geometry(options: dict) -> tuple[int, int | None]:
    """(pixels read per patch, crop fed to the model or None). ``downsample``: the patch resized to
    ``patch_px``; ``crop``: read at full size, windows of ``patch_px`` fed to the model."""
    data = options.get("data", {})
    px = int(data.get("patch_px", 128))
    if data.get("mode", "downsample") == "crop":
        return int(data.get("read_px", 256)), px
    return px, None


def decoded_patches(index: pd.DataFrame, manifest: pd.DataFrame, options: dict) -> np.ndarray:
    data = options.get("data", {})
    read_px, _ = patch_geometry(options)
    cache_dir = Path(options.get("checkpoint_dir", "data/06_models/checkpoints"))
    key = fingerprint(index[["slide_id", "x", "y", "level", "size"]].to_numpy().astype(str).tolist(), read_px)
    return read_patches(index, slide_paths(manifest), read_px, int(data.get("num_workers", 0)), data.get("cache", "disk"), cache_dir / f"wsi_patches_{key}.npy")


def training_view(image: np.ndarray, crop: int | None = None, augment: Augment | None = None) -> torch.Tensor:
    """A uint8 patch [3, S, S] as float [0, 1] (a copy: rows of a disk cache are read-only), cut to a
    ``crop`` x ``crop`` window (random with ``augment``, the centre one without) and augmented."""
    x = torch.from_numpy(np.array(image)).float().div_(255.0)
    if crop and crop < x.shape[-1]:
        span = x.shape[-1] - crop
        y0, x0 = (int(torch.randint(span + 1, (1,))), int(torch.randint(span + 1, (1,)))) if augment is not None else (span // 2, span // 2)
        x = x[:, y0 : y0 + crop, x0 : x0 + crop]
    return augment(x) if augment is not None else x


class PatchTensorDataset(Dataset):
    """Decoded patches + integer labels, augmented on the fly: items ``(image [3, S, S] float, label)``.

    ``crop``: a random ``crop`` x ``crop`` window of each patch (full-resolution morphology at a fraction of
    the tokens); the centre window when ``augment`` is None (validation)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: Augment | None = None, crop: int | None = None):
        self.images, self.labels, self.augment, self.crop = images, np.asarray(labels), augment, crop

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return training_view(self.images[i], self.crop, self.augment), int(self.labels[i])


class TripletStep:
    """Warm-up epochs: lineage cross-entropy; then batch-hard triplet (+ ``ce_weight`` x cross-entropy).

    The cross-entropy is a cosine (proxy) classifier on the same L2-normalised embedding the triplet loss
    uses: logits = ``scale`` * cos(z, w_lineage). Classes must then be separated by angle, so the softmax
    also holds the normalised embeddings apart (a linear head on the raw CLS does not: the triplet stage
    collapsed the normalised embeddings under it)."""

    def __init__(self, margin: float, warmup_epochs: int, ce_weight: float = 0.0, scale: float = 16.0):
        self.margin, self.warmup_epochs, self.ce_weight, self.scale = margin, warmup_epochs, ce_weight, scale
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, model, batch, device) -> dict[str, torch.Tensor]:
        x, labels = (t.to(device) for t in batch)
        out = model(x)
        z = F.normalize(out["cls"].float(), dim=-1)
        triplet = batch_hard_triplet(z, labels, self.margin)
        if "logits" in out:
            proxies = F.normalize(model.head.weight.float(), dim=-1)
            ce = F.cross_entropy(self.scale * z @ proxies.T, labels)
        else:
            ce = torch.zeros((), device=device)
        warm = self.epoch < self.warmup_epochs
        loss = ce if warm else triplet + self.ce_weight * ce
        spread = torch.cdist(z, z).mean()
        return {"loss": loss, "triplet": triplet.detach(), "ce": ce.detach(), "spread": spread.detach()}


def windows(images: torch.Tensor, crop: int | None) -> list[torch.Tensor]:
    """The non-overlapping ``crop``-px windows of [N, 3, S, S] images (the images themselves without crop)."""
    size = images.shape[-1]
    if not crop or crop >= size:
        return [images]
    return [images[:, :, a : a + crop, b : b + crop] for a in range(0, size - crop + 1, crop) for b in range(0, size - crop + 1, crop)]


@torch.no_grad()
def embed(model, images: np.ndarray, batch_size: int = 128, device="cpu", crop: int | None = None) -> np.ndarray:
    """L2-normalised CLS embeddings of uint8 patches [N, 3, S, S] -> [N, D]. With ``crop``, the mean
    embedding of the non-overlapping ``crop`` x ``crop`` windows of each patch (then normalised)."""
    model.eval().to(device)
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.asarray(images[i : i + batch_size])).float().div_(255.0).to(device)
        if crop and crop < x.shape[-1]:
            z = torch.stack([F.normalize(model(w)["cls"].float(), dim=-1) for w in windows(x, crop)]).mean(0)
        else:
            z = model(x)["cls"].float()
        out.append(F.normalize(z, dim=-1).cpu())
    return torch.cat(out).numpy()


def nearest_neighbour_eval(train_x, train_y, test_x, test_y, patient_of: dict) -> dict:
    """1-NN (cosine) lineage retrieval of test items against train items: accuracy, patient accuracy,
    balanced accuracy, chance, and the share of errors that stay within the true patient."""
    a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    b = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    pred = np.asarray(train_y)[np.argmax(b @ a.T, axis=1)]
    test_y = np.asarray(test_y)
    correct = pred == test_y
    wrong = ~correct
    same_patient = np.array([patient_of[p] == patient_of[t] for p, t in zip(pred, test_y, strict=True)])
    per_lineage = pd.Series(correct).groupby(test_y).mean()
    return {
        "accuracy": float(correct.mean()),
        "balanced_accuracy": float(per_lineage.mean()),
        "patient_accuracy": float(same_patient.mean()),
        "chance": 1.0 / len(set(train_y)),
        "errors_within_patient": float(same_patient[wrong].mean()) if wrong.any() else float("nan"),
        "n_test": int(len(test_y)),
        "predicted": pred,
    }


def confusion_figure(true, pred, title: str, xlabel: str = "retrieved lineage (1-NN)") -> Figure:
    """Confusion matrix (rows = true lineage, columns = retrieved lineage), counts of patches; the title wrapped."""
    labels = sorted(set(true) | set(pred))
    matrix = pd.crosstab(pd.Categorical(true, labels), pd.Categorical(pred, labels), dropna=False).to_numpy()
    fig = Figure(figsize=(6.5, 5.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true lineage")
    ax.set_title(textwrap.fill(title, 70), fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig

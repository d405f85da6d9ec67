"""Training and evaluating the WSI patch encoder (paper 2.3, eq. 6).

The ViT's CLS embedding (L2-normalised) is trained with a batch-hard triplet loss across lineages on
batches of P lineages x K patches. Batch-hard triplet from scratch can collapse (every embedding equal,
loss = margin), so the first ``warmup_epochs`` train a lineage softmax head instead (cross-entropy); the
triplet stage then starts from separated embeddings (``ce_weight`` keeps some softmax after warm-up). The
mean distance between a batch's embeddings (``spread``) is logged to show there is no collapse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from gb_kedro.baselines import colour_columns, colour_feature_names, colour_histogram_features, fit_lineage_classifier
from gb_kedro.config import (
    LineageClassifierConfig,
    MorphometryConfig,
    PatchesConfig,
    SplitConfig,
    TripletConfig,
    WSIEncodingConfig,
)
from gb_kedro.datasets.atomic import atomic_path
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.distributed import rank_and_world
from gb_kedro.errors import InputDataError
from gb_kedro.evaluation import SET_LABELS, confusion_figure, nearest_neighbour_eval, paired_difference
from gb_kedro.losses import (
    batch_hard_triplet,
    masked_patch_loss,
    multi_positive_info_nce,
    reverse_gradient,
    within_label_group_loss,
)
from gb_kedro.models.vit import VisionTransformer, patchify, vit
from gb_kedro.provenance import fingerprint, made_with
from gb_kedro.slides.augment import Augment, StainMix
from gb_kedro.slides.fanout import map_slides
from gb_kedro.slides.morphometry import (
    ALL_FEATURES,
    FEATURES,
    chunk_features,
    feature_frame,
    fill_missing,
    numbered_columns,
)
from gb_kedro.slides.patches import apply_views, draw_view, window_batches
from gb_kedro.slides.sampling import PKSampler
from gb_kedro.tracking import git_commit, log_evaluation, log_metrics, log_parent_metrics, log_torch_model, nested_run
from gb_kedro.training import TrainConfig, fit, kept_epoch, resolve_device

logger = logging.getLogger(__name__)


class PatchTensorDataset(Dataset):
    """Decoded patches + integer labels, augmented on the fly: items ``(image [3, S, S] float, label, mouse,
    target)`` (``mouse`` -1 and ``target`` empty when not given).

    ``crop``: a random ``crop`` x ``crop`` window of each patch (full-resolution morphology at a fraction of
    the tokens); the centre window when ``augment`` is None (validation). ``stain``: a
    :class:`~gb_kedro.slides.augment.StainMix` and ``slides`` the slide code of each item. ``targets``:
    per-item regression targets (standardised morphometry) for the auxiliary head. ``views``: independent random
    views drawn per item (2 for the two-view self-supervised term; the image of an item is then [views, 3, S, S])."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        augment: Augment | None = None,
        crop: int | None = None,
        mice: np.ndarray | None = None,
        targets: np.ndarray | None = None,
        stain: StainMix | None = None,
        slides: np.ndarray | None = None,
        views: int = 1,
    ):
        self.images, self.labels, self.augment, self.crop = images, np.asarray(labels), augment, crop
        self.views = views
        self.mice = np.full(len(self.labels), -1) if mice is None else np.asarray(mice)
        self.targets = (
            torch.zeros(len(self.labels), 0) if targets is None else torch.as_tensor(targets, dtype=torch.float32)
        )
        self.stain, self.slides = stain, slides

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        """The item's window (uint8) and random draws; :meth:`collate` does the pixel work batch-wise."""
        slide = int(self.slides[i]) if self.slides is not None else 0
        drawn = [draw_view(self.images[i], self.crop, self.augment, self.stain, slide) for _ in range(self.views)]
        window, draws = drawn[0] if self.views == 1 else (torch.stack(part) for part in zip(*drawn, strict=True))
        return window, draws, int(self.labels[i]), int(self.mice[i]), self.targets[i]

    def collate(self, items: list) -> tuple[torch.Tensor, ...]:
        """A batch ``(image [N, 3, S, S] float ([N, views, 3, S, S] with several views), label, mouse, target)``:
        the views made for the whole batch at once (the pixels of :func:`~gb_kedro.slides.patches.training_view`,
        item by item)."""
        windows, draws, labels, mice, targets = zip(*items, strict=True)
        windows, draws = torch.stack(windows), torch.stack(draws)
        x = apply_views(windows.flatten(0, windows.dim() - 4), draws.reshape(-1, draws.shape[-1]), self.stain)
        return x.reshape(windows.shape), torch.tensor(labels), torch.tensor(mice), torch.stack(targets)


class TripletStep:
    """Warm-up epochs: lineage cross-entropy; then batch-hard triplet (+ ``ce_weight`` x cross-entropy).

    The cross-entropy is a cosine (proxy) classifier on the same L2-normalised embedding the triplet loss
    uses: logits = ``scale`` * cos(z, w_lineage), the proxies w being the rows of the ViT's ``head``. Classes
    must then be separated by angle, so the softmax also holds the normalised embeddings apart (a linear head
    on the raw CLS does not: the triplet stage collapsed the normalised embeddings under it).

    Anti-shortcut options: ``cross_mouse`` (a triplet positive is never from the anchor's mouse),
    ``morphometry_weight`` (the model's ``aux_head`` regresses each patch's standardised morphometry from the
    CLS, every epoch: a target that describes nuclei, not slides) and ``mouse_adversary`` (the model's
    ``mouse_head`` predicts, through a gradient reversal, which of its lineage's mice a patch comes from: the
    encoder is pushed to drop what tells two mice of one lineage apart, i.e. slide identity).

    Self-supervised term (``view_weight`` > 0, batches of two views per patch, image [N, 2, 3, S, S]): both views
    feed the lineage losses, and the model's ``view_head`` (an MLP on the CLS) must tell each view's partner -- the
    same patch through another window, stain, turn and jitter -- among every other view of the batch (NT-Xent,
    :func:`~gb_kedro.losses.multi_positive_info_nce` with the patch as the label, ``view_temperature``): a target
    that asks for whatever the patch's windows share, every epoch, warm-up included.

    Masked-image modelling (``mim_epochs`` > 0 or ``mim_weight`` > 0; the model's ``mask_token`` and ``mim_decoder``):
    a share ``mim_ratio`` of each image's 16x16 sub-patches is hidden (:meth:`VisionTransformer.forward_features`
    with a mask) and a linear decoder on the last tokens predicts their standardised pixels
    (:func:`~gb_kedro.losses.masked_patch_loss`, SimMIM): a target of texture, not of lineage. The first
    ``mim_epochs`` epochs train that term alone (a self-supervised warm start on the training patches); the lineage
    schedule (softmax warm-up, then triplet) counts its epochs from there, with the term kept at ``mim_weight``.

    Projector (``projector``; the model's ``projector``, an MLP on the CLS): the lineage losses act on its output,
    and the embedding every consumer reads is the CLS before it, so the lineage-specific last map can live in a
    layer that is thrown away (SimCLR's projection head; Bordes et al. 2022, "guillotine regularization")."""

    def __init__(
        self,
        margin: float,
        warmup_epochs: int,
        ce_weight: float,
        scale: float,
        cross_mouse: bool = False,
        morphometry_weight: float = 0.0,
        mouse_adversary: float = 0.0,
        view_weight: float = 0.0,
        view_temperature: float | None = None,
        mim_epochs: int = 0,
        mim_weight: float = 0.0,
        mim_ratio: float | None = None,
        projector: bool = False,
    ):
        if view_weight and view_temperature is None:
            raise ValueError("a two-view term (view_weight > 0) needs its view_temperature (wsi_encoding.loss)")
        if (mim_epochs or mim_weight) and mim_ratio is None:
            raise ValueError(
                "masked-image modelling (mim_epochs or mim_weight > 0) needs its mim_ratio (wsi_encoding.loss)"
            )
        self.margin, self.warmup_epochs, self.ce_weight, self.scale = margin, warmup_epochs, ce_weight, scale
        self.cross_mouse, self.morphometry_weight = cross_mouse, morphometry_weight
        self.mouse_adversary, self.view_weight, self.view_temperature = mouse_adversary, view_weight, view_temperature
        self.mim_epochs, self.mim_weight, self.mim_ratio = mim_epochs, mim_weight, mim_ratio
        self.projector = projector
        self.epoch = 0

    @classmethod
    def of(cls, loss: TripletConfig) -> TripletStep:
        """The step of ``wsi_encoding.loss`` (every value from ``conf/base``)."""
        return cls(
            margin=loss.margin,
            warmup_epochs=loss.warmup_epochs,
            ce_weight=loss.ce_weight,
            scale=loss.proxy_scale,
            cross_mouse=loss.cross_mouse,
            morphometry_weight=loss.morphometry_weight,
            mouse_adversary=loss.mouse_adversary,
            view_weight=loss.view_weight,
            view_temperature=loss.view_temperature,
            mim_epochs=loss.mim_epochs,
            mim_weight=loss.mim_weight,
            mim_ratio=loss.mim_ratio,
            projector=loss.projector,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, model, batch, device, gather: bool = False) -> dict[str, torch.Tensor]:
        x, labels, *extra = (t.to(device) for t in batch)  # (image, label[, mouse, morphometry target])
        mice, targets = extra if extra else (None, x.new_zeros(len(labels), 0))
        views = x.shape[1] if x.dim() == 5 else 1
        if views > 1:  # [N, V, 3, S, S]: every view an item of the lineage losses, views of one patch adjacent
            patch = torch.arange(len(labels), device=device).repeat_interleave(views)
            x = x.flatten(0, 1)
            labels, targets = labels.repeat_interleave(views), targets.repeat_interleave(views, dim=0)
            mice = None if mice is None else mice.repeat_interleave(views)
        if self.epoch < self.mim_epochs:  # the warm start: masked-image modelling alone
            mim = masked_image_loss(model, x, self.mim_ratio)
            return {"loss": mim, "mim": mim.detach()}
        mim = masked_image_loss(model, x, self.mim_ratio) if self.mim_weight else None
        cls = model(x)["cls"].float()
        z = F.normalize(model.projector(cls) if self.projector else cls, dim=-1)
        triplet = batch_hard_triplet(
            z, labels, self.margin, groups=mice if self.cross_mouse and mice is not None else None, gather=gather
        )
        if model.config.num_classes > 0:
            proxies = F.normalize(model.head.weight.float(), dim=-1)
            ce = F.cross_entropy(self.scale * z @ proxies.T, labels)
        else:
            ce = torch.zeros((), device=device)
        loss = ce if self.epoch - self.mim_epochs < self.warmup_epochs else triplet + self.ce_weight * ce
        metrics = {"triplet": triplet.detach(), "ce": ce.detach(), "spread": torch.cdist(z, z).mean().detach()}
        if mim is not None:
            loss = loss + self.mim_weight * mim
            metrics["mim"] = mim.detach()
        if self.mouse_adversary and mice is not None:
            # the encoder learns to hide which of its lineage's mice a patch comes from (gradient reversal)
            adv = within_label_group_loss(model.mouse_head(reverse_gradient(cls)), mice, labels)
            loss = loss + self.mouse_adversary * adv
            metrics["mouse_adversary"] = adv.detach()
        if self.morphometry_weight and targets.shape[1]:
            morph = F.mse_loss(model.aux_head(cls), targets.float())
            loss = loss + self.morphometry_weight * morph
            metrics["morphometry"] = morph.detach()
        if self.view_weight and views > 1:
            if gather:  # patch numbers unique over the ranks' batches
                patch = patch + rank_and_world()[0] * len(x)
            pair = multi_positive_info_nce(model.view_head(cls), patch, self.view_temperature, gather=gather)
            loss = loss + self.view_weight * pair
            metrics["views"] = pair.detach()
        return {"loss": loss, **metrics}


def proxy_similarity(model: VisionTransformer) -> np.ndarray:
    """Cosine similarity between the model's lineage proxies (rows of its ``head``), lineages x lineages."""
    proxies = F.normalize(model.head.weight.detach().float().cpu(), dim=-1)
    return (proxies @ proxies.T).numpy()


def mlp_head(dim: int) -> torch.nn.Sequential:
    """Linear, GELU, linear at the CLS width: a projection head trained with the encoder and dropped before it is
    saved (the embedding is the CLS before it)."""
    return torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.GELU(), torch.nn.Linear(dim, dim))


def masked_image_loss(model: VisionTransformer, x: torch.Tensor, ratio: float) -> torch.Tensor:
    """SimMIM on images ``x`` [N, 3, S, S]: ``round(ratio * L)`` of each image's L sub-patches drawn at random and
    hidden, their standardised pixels predicted by the model's ``mim_decoder`` from the last tokens."""
    n, tokens = len(x), (x.shape[-1] // model.config.patch_size) * (x.shape[-2] // model.config.patch_size)
    hidden = max(1, round(ratio * tokens))
    order = torch.rand(n, tokens, device=x.device).argsort(dim=1)
    mask = torch.zeros(n, tokens, dtype=torch.bool, device=x.device).scatter_(1, order[:, :hidden], True)
    pred = model.mim_decoder(model.forward_features(x, mask)[:, 1:])
    return masked_patch_loss(pred, patchify(x, model.config.patch_size), mask)


def measure_morphometry(
    patch_index: pd.DataFrame, pixels: PatchPixels, cfg: WSIEncodingConfig, morph: MorphometryConfig
) -> pd.DataFrame:
    """:data:`~gb_kedro.slides.morphometry.ALL_FEATURES` of every tumour patch (cached in ``checkpoint_dir`` by
    the patches' content key, the parameters and the feature list), beside the index columns."""
    index = patch_index.reset_index(drop=True)
    images = pixels.images
    key = fingerprint(
        index[["slide_id", "x", "y"]].to_numpy().astype(str).tolist(), images.shape, morph.to_dict(), ALL_FEATURES
    )
    cache = Path(cfg.checkpoint_dir) / f"morphometry_{key}.npy"
    if cache.exists():
        values = np.load(cache)
    else:
        options = (morph.min_area, morph.neighbour_radius, morph.tumour_od_difference, morph.smooth_px)
        # workers read a disk cache themselves (memory map); patches travel only without one
        source = str(images.filename) if isinstance(images, np.memmap) else None
        step = max(1, -(-len(index) // (8 * max(morph.n_workers, 1))))
        jobs = [
            (source or np.asarray(images[a : a + step]), a, min(a + step, len(index)), options)
            for a in range(0, len(index), step)
        ]
        raw = np.empty((len(index), len(ALL_FEATURES)))
        for start, part in map_slides(chunk_features, jobs, "local", morph.n_workers, desc="morphometry"):
            raw[start : start + len(part)] = part
        values = fill_missing(raw).astype(np.float32)
        with atomic_path(cache) as tmp:
            np.save(tmp, values)
    return feature_frame(index, values)


def measure_colour(patch_index: pd.DataFrame, pixels: PatchPixels, cfg: WSIEncodingConfig) -> pd.DataFrame:
    """Colour statistics of every tumour patch (``cfg.colour_bins``-bin RGB histograms, channel means and
    standard deviations), beside the index columns: computed once per run for every consumer (the colour row of
    Table 1, the image-only baselines, the image axis probe)."""
    values = colour_histogram_features(np.moveaxis(pixels.images, 1, -1), cfg.colour_bins)
    return feature_frame(patch_index.reset_index(drop=True), values, colour_feature_names(cfg.colour_bins))


def _codes(values) -> np.ndarray:
    return pd.factorize(np.asarray(values))[0]


@torch.no_grad()
def embed(
    model: VisionTransformer,
    images: np.ndarray,
    batch_size: int,
    views: str,
    device="cpu",
    crop: int | None = None,
) -> np.ndarray:
    """L2-normalised CLS embeddings of uint8 patches [N, 3, S, S] -> [N, D]: the mean of the normalised
    embeddings of each patch's views (then normalised): its non-overlapping ``crop`` x ``crop`` windows (the
    patch itself without ``crop``), each also turned by 90, 180 and 270 degrees with ``views: rotations`` or in its
    8 flips / rotations with ``views: dihedral``."""
    model.eval().to(device)
    out = []
    for parts in window_batches(images, crop, batch_size, views, device):
        if len(parts) > 1:
            z = torch.stack([F.normalize(model(w)["cls"].float(), dim=-1) for w in parts]).mean(0)
        else:
            z = model(parts[0])["cls"].float()
        out.append(F.normalize(z, dim=-1).cpu())
    return torch.cat(out).numpy()


def morphometry_targets(values: np.ndarray, labels: np.ndarray, within_lineage: bool) -> np.ndarray:
    """The auxiliary head's targets from the training patches' morphometry ``values`` [N, F]: each feature
    standardised; with ``within_lineage`` its lineage's mean (``labels``) taken away and the rest scaled to unit
    within-lineage spread -- a target that knowing the lineage does not predict, so the head must read the
    measurement from the pixels instead of from the lineage's identity (constant columns stay 0)."""
    x = StandardScaler().fit_transform(values)
    if within_lineage:
        x = x - pd.DataFrame(x).groupby(labels).transform("mean").to_numpy()
        spread = x.std(axis=0)
        x = x / np.where(spread > 0, spread, 1.0)
    return x.astype(np.float32)


def train_encoder(
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    cfg: WSIEncodingConfig,
    patches: PatchesConfig,
    morphometry_features: pd.DataFrame | None = None,
    on_epoch: Callable[[int, VisionTransformer], None] | None = None,
) -> tuple[VisionTransformer, pd.DataFrame]:
    """Train the ViT on the ``train`` patches of the evaluation split (held-out patches never seen), in a
    nested MLflow run ``wsi_encoding``. ``morphometry_features`` (rows as ``patch_index``): the auxiliary
    target (``loss.morphometry_targets``, all 40 features by default; :func:`morphometry_targets`) when
    ``loss.morphometry_weight`` > 0. ``on_epoch(epoch, model)``: called after each epoch (the
    model as trained so far; the next epoch puts it back in training mode), e.g. to score it against
    training length. Returns the model (``meta``: lineages, MLflow run) and the history."""
    train_rows = (patch_index["split"] == "train").to_numpy()
    lineages = sorted(patch_index.loc[train_rows, "lineage_id"].unique())
    labels = patch_index.loc[train_rows, "lineage_id"].map({lab: i for i, lab in enumerate(lineages)}).to_numpy()
    mice = _codes(patch_index.loc[train_rows, "mouse_id"])
    slides = _codes(patch_index.loc[train_rows, "slide_id"])
    images = pixels.rows(train_rows)
    targets = None
    if cfg.loss.morphometry_weight:
        if morphometry_features is None:
            raise ValueError("wsi_encoding.loss.morphometry_weight > 0 needs the morphometry features")
        columns = list(cfg.loss.morphometry_targets or ALL_FEATURES)
        unknown = sorted(set(columns) - set(ALL_FEATURES))
        if unknown:
            raise InputDataError(
                cfg.SOURCE, f"wsi_encoding.loss.morphometry_targets: not morphometry features: {', '.join(unknown)}"
            )
        values = morphometry_features[columns].to_numpy(np.float32)[train_rows]
        targets = morphometry_targets(values, labels, cfg.loss.morphometry_within_lineage)
    stain = StainMix.fit(images, slides, patches.augment.stain_mix)
    val = np.random.default_rng(cfg.seed).random(len(labels)) < cfg.val_fraction
    torch.manual_seed(cfg.seed)
    read_px, crop = patches.geometry
    model = vit(
        cfg.model.preset,
        img_size=crop or read_px,
        num_classes=len(lineages),
        grad_checkpointing=cfg.model.grad_checkpointing,
        stem=cfg.model.stem,
    )
    if targets is not None:  # trained with the encoder, dropped before the model is saved
        model.aux_head = torch.nn.Linear(model.config.dim, targets.shape[1])
    if cfg.loss.mouse_adversary:
        model.mouse_head = torch.nn.Linear(model.config.dim, int(mice.max()) + 1)
    if cfg.loss.view_weight:  # SimCLR's projection head: the term acts on its output, the CLS keeps more
        model.view_head = mlp_head(model.config.dim)
    if cfg.loss.projector:  # the lineage losses' own projection head, dropped like the others
        model.projector = mlp_head(model.config.dim)
    if cfg.loss.mim_epochs or cfg.loss.mim_weight:  # SimMIM's mask token and one-layer pixel decoder
        dim, pixels_per_token = model.config.dim, 3 * model.config.patch_size**2
        model.mask_token = torch.nn.Parameter(torch.nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02))
        model.mim_decoder = torch.nn.Linear(dim, pixels_per_token)
    step = TripletStep.of(cfg.loss)
    augment = Augment(patches.augment.flips, patches.augment.hed_sigma, patches.augment.hed_bias)

    def subset(rows, aug, stain_mix, views=1):
        return PatchTensorDataset(
            images[rows],
            labels[rows],
            aug,
            crop=crop,
            mice=mice[rows],
            targets=None if targets is None else targets[rows],
            stain=stain_mix,
            slides=slides[rows],
            views=views,
        )

    train_set = subset(~val, augment, stain, views=2 if cfg.loss.view_weight else 1)
    val_set = subset(val, None, None) if val.any() else None
    config = TrainConfig.of(cfg.train, cfg.seed, cfg.device)
    params = {
        **{k: v for k, v in cfg.to_dict().items() if k != "checkpoint_dir"},
        "patches": patches.to_dict(),
        "lineages": len(lineages),
        "train_patches": int((~val).sum()),
    }
    with nested_run("wsi_encoding", params) as run:
        result = fit(
            model,
            train_set,
            val_set,
            step,
            config,
            checkpoint_dir=Path(cfg.checkpoint_dir) / "wsi",
            on_epoch=lambda epoch, metrics: _after_epoch(run, model, epoch, metrics, on_epoch),
            desc="wsi encoder",
            fingerprint=fingerprint(
                model.config_dict(),
                config.to_dict(),
                cfg.loss.to_dict(),
                patches.augment.to_dict(),
                cfg.sampler.to_dict(),
                labels[~val],
                images.shape,
                mice[~val].tolist(),
                None if targets is None else float(targets.sum()),
            ),
            batch_sampler=lambda epoch: PKSampler(
                labels[~val],
                cfg.sampler.p,
                cfg.sampler.k,
                seed=cfg.seed * 1000 + epoch,
                groups=mice[~val] if cfg.loss.cross_mouse else None,
                similarity=proxy_similarity(model) if cfg.loss.neighbour_batches and epoch > 0 else None,
            ),
        )
        for head in ("aux_head", "mouse_head", "view_head", "projector", "mask_token", "mim_decoder"):
            if hasattr(model, head):
                delattr(model, head)
        model.cpu().eval().describe(
            lineages=lineages,
            training={
                "preset": cfg.model.preset,
                "epochs": cfg.train.epochs,
                "warmup_epochs": cfg.loss.warmup_epochs,
                "mim_epochs": cfg.loss.mim_epochs,
            },
            mlflow_run_id=run.info.run_id if run is not None else None,
        )
        if result["epochs_run"]:  # a resumed, finished training is the model already registered
            description = (
                f"WSI patch encoder (ViT {cfg.model.preset}, 16x16 sub-patches; lineage softmax warm-up then batch-hard triplet), "
                f"{len(lineages)} lineages, {int((~val).sum())} training patches of the evaluation split"
            )
            tags = {"split": made_with(patch_index).get("split", {}).get("mode"), "commit": git_commit()}
            log_torch_model(run, model, "gb_kedro.wsi_encoder", description, tags)
    logger.info(
        "wsi_encoding: %d epochs (%s), device %s",
        len(result["history"]),
        kept_epoch(result, cfg.train.keep),
        result["device"],
    )
    return model, pd.DataFrame(result["history"])


def _after_epoch(run, model, epoch: int, metrics: dict, hook) -> None:
    log_metrics(run, {k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)
    if hook is not None:
        hook(epoch, model)


def embed_patches(
    model: VisionTransformer,
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    cfg: WSIEncodingConfig,
    patches: PatchesConfig,
) -> pd.DataFrame:
    """CLS embeddings (L2-normalised) of every tumour patch, train and held out, with the index columns."""
    z = embed(
        model,
        pixels.images,
        patches.inference_batch_size,
        patches.test_views,
        device=resolve_device(cfg.device),
        crop=patches.geometry[1],
    )
    return feature_frame(patch_index, z, [f"e{i}" for i in range(z.shape[1])])


def evaluate_embeddings(
    embeddings: pd.DataFrame,
    colour_features: pd.DataFrame,
    split: SplitConfig,
    cfg: WSIEncodingConfig,
    morphometry_features: pd.DataFrame,
    classifier: LineageClassifierConfig,
    label: str = "WSI encoder",
    mlflow_run_id: str | None = None,
):
    """Image-only lineage retrieval: 1-NN of the held-out patches of seen lineages (held-out patches of seen
    slides; unseen mice) against the training patches, beside the colour-histogram and pixel-morphometry
    baselines (1-NN on standardised features) and chance; then the stronger protocol, a regularised classifier
    of the training patches' lineage (:func:`~gb_kedro.baselines.fit_lineage_classifier`) on the embedding
    (``model_classifier``) and on the 40 morphometry features (``morphometry_classifier``, the strong baseline),
    each encoder answer minus the strong baseline's on the same patches with a slide-paired 95 % interval
    (``<set>/<what>_minus_morphometry_classifier``); a confusion plot (unseen mice when there are). Unseen lineages cannot be retrieved image-only (no training
    patch of theirs): not scored here. ``label`` names the representation in the figure and the log;
    ``mlflow_run_id``: the training run the metrics and figure are added to (none: not logged there)."""
    cols = [c for c in embeddings.columns if c.startswith("e")]
    held = (
        embeddings["held_out"].to_numpy()
        if "held_out" in embeddings
        else np.where(embeddings["split"] == "test", split.mode, "")
    )
    train = (embeddings["split"] == "train").to_numpy()
    patient_of = dict(zip(embeddings["lineage_id"], embeddings["patient_id"], strict=False))
    y = embeddings["lineage_id"].to_numpy()
    colour = colour_features[colour_columns(colour_features)].to_numpy(np.float64)
    features = {
        "model": embeddings[cols].to_numpy(),
        "colour_baseline": StandardScaler().fit(colour[train]).transform(colour),
        "morphometry_baseline": StandardScaler()
        .fit(morphometry_features.loc[train, list(FEATURES)])
        .transform(morphometry_features[list(FEATURES)]),
    }
    classifiers = {
        "model_classifier": embeddings[cols].to_numpy(),
        "morphometry_classifier": morphometry_features[list(ALL_FEATURES)].to_numpy(np.float64),
    }
    metrics: dict = {"split_mode": split.mode}
    shown = None
    fitted = {}
    if (held == "patch").any() or (held == "mouse").any():
        mouse = embeddings["mouse_id"].to_numpy()
        for what, x in classifiers.items():
            fitted[what], choice = fit_lineage_classifier(x[train], y[train], mouse[train], classifier)
            metrics[f"{what}_inverse_penalty"] = choice["inverse_penalty"]
    for name in ("patch", "mouse"):
        test = held == name
        if not test.any():
            continue
        for what, x in features.items():
            ev = nearest_neighbour_eval(x[train], y[train], x[test], y[test], patient_of)
            metrics.update({f"{name}/{what}_{k}": v for k, v in ev.items() if k != "predicted"})
            if what == "model":
                ev_model = ev
                shown = (name, test, ev)
        hits = {"model": ev_model["predicted"] == y[test]}
        for what, x in classifiers.items():
            hits[what] = correct = fitted[what].predict(x[test]) == y[test]
            metrics[f"{name}/{what}_accuracy"] = float(correct.mean())
            metrics[f"{name}/{what}_balanced_accuracy"] = float(pd.Series(correct).groupby(y[test]).mean().mean())
        slide = embeddings.loc[test, "slide_id"].to_numpy()
        for what in ("model", "model_classifier"):  # the encoder against the strong baseline, same slides resampled
            paired = paired_difference(hits[what], hits["morphometry_classifier"], slide, cfg.n_boot, cfg.seed)
            key = f"{name}/{what}_minus_morphometry_classifier"
            metrics[key] = paired["difference"]
            metrics[key + "_ci_low"], metrics[key + "_ci_high"] = (
                paired["difference_ci_low"],
                paired["difference_ci_high"],
            )
    if shown is None:  # split.mode lineage: nothing to retrieve image-only
        logger.warning("%s: no held-out patch of a seen lineage; image-only retrieval not scored", label)
        figure = Figure(figsize=(4, 1.5))
        figure.text(0.5, 0.5, "no held-out patch of a seen lineage (split.mode lineage)", ha="center", fontsize=8)
        return metrics, figure
    name, test, ev = shown
    figure = confusion_figure(
        y[test],
        ev["predicted"],
        f"{label}, 1-NN lineage retrieval ({SET_LABELS[name]}): {ev['accuracy']:.2f} "
        f"(colour {metrics[f'{name}/colour_baseline_accuracy']:.2f}, morphometry "
        f"{metrics[f'{name}/morphometry_baseline_accuracy']:.2f}, chance {ev['chance']:.2f})",
    )
    log_evaluation("wsi_encoding", mlflow_run_id, metrics, figure, "wsi_confusion.png")
    for name in ("patch", "mouse"):
        if f"{name}/model_accuracy" in metrics:
            logger.info(
                "%s (%s): 1-NN lineage accuracy %.3f, colour %.3f, morphometry %.3f, chance %.3f; "
                "classifier on the embedding %.3f, on 40 morphometry features %.3f",
                label,
                SET_LABELS[name],
                metrics[f"{name}/model_accuracy"],
                metrics[f"{name}/colour_baseline_accuracy"],
                metrics[f"{name}/morphometry_baseline_accuracy"],
                metrics[f"{name}/model_chance"],
                metrics[f"{name}/model_classifier_accuracy"],
                metrics[f"{name}/morphometry_classifier_accuracy"],
            )
    return metrics, figure


def evaluate_patch_features(
    embeddings: pd.DataFrame,
    colour_features: pd.DataFrame,
    split: SplitConfig,
    cfg: WSIEncodingConfig,
    morphometry_features: pd.DataFrame,
    classifier: LineageClassifierConfig,
    name: str,
    match: dict,
):
    """:func:`evaluate_embeddings` of a patch encoder of the user's own (``gb_kedro.patch_features``) on the
    patches that have a feature row -- the baselines on the same patches -- with its match counts
    (``matched``, ``missing``); its figures logged to the MLflow parent run as ``patch_features/<name>/*``."""
    has = np.isfinite(embeddings[numbered_columns(embeddings, "e")].to_numpy()).all(axis=1)

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[has].reset_index(drop=True)

    metrics, figure = evaluate_embeddings(
        rows(embeddings),
        rows(colour_features),
        split,
        cfg,
        rows(morphometry_features),
        classifier,
        label=f"{name} features",
    )
    metrics = {"encoder": name, "matched": match["matched"], "missing": match["missing"], **metrics}
    log_parent_metrics({f"patch_features/{name}/{k}": v for k, v in metrics.items() if isinstance(v, int | float)})
    return metrics, figure

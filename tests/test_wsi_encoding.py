"""Unit tests of the WSI stage module: the warm-up/triplet switch, window-averaged embeddings, crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gb_kedro import wsi_encoding as wsi
from gb_kedro.losses import batch_hard_triplet
from gb_kedro.models.vit import vit
from gb_kedro.slides.patches import windows
from tests.helpers import base_options


def _model(num_classes=3, img=32):
    torch.manual_seed(0)
    return vit("tiny", img_size=img, patch_size=16, num_classes=num_classes)


def test_warm_up_is_the_cosine_softmax_then_triplet_plus_weighted_softmax():
    model = _model()
    x, labels = torch.rand(6, 3, 32, 32), torch.tensor([0, 0, 1, 1, 2, 2])
    step = wsi.TripletStep(margin=0.3, warmup_epochs=2, ce_weight=0.5, scale=16.0)
    warm = step(model, (x, labels), "cpu")
    z = F.normalize(model(x)["cls"].float(), dim=-1)
    ce = F.cross_entropy(16.0 * z @ F.normalize(model.head.weight, dim=-1).T, labels)
    torch.testing.assert_close(warm["loss"], ce)
    step.set_epoch(2)
    after = step(model, (x, labels), "cpu")
    torch.testing.assert_close(after["loss"], batch_hard_triplet(z, labels, 0.3) + 0.5 * ce)
    no_head = wsi.TripletStep(0.3, 0, 1.0, 16.0)(_model(num_classes=0), (x, labels), "cpu")
    assert no_head["ce"] == 0


def test_embeddings_average_the_normalised_windows():
    model = _model(num_classes=0).eval()
    images = (np.random.default_rng(0).random((5, 3, 64, 64)) * 255).astype(np.uint8)
    z = wsi.embed(model, images, batch_size=2, views="none", crop=32)
    x = torch.from_numpy(images).float() / 255.0
    with torch.no_grad():
        parts = [F.normalize(model(w)["cls"], dim=-1) for w in windows(x, 32)]
    expected = F.normalize(torch.stack(parts).mean(0), dim=-1).numpy()
    assert len(parts) == 4 and z.shape == (5, 96)
    np.testing.assert_allclose(z, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


def test_dihedral_views_make_embeddings_blind_to_orientation():
    """With ``views: dihedral`` a patch and its flipped / rotated copies embed identically (the 8 views of
    its 4 windows are the same set); with the windows alone they do not."""
    from gb_kedro.slides.patches import dihedral

    model = _model(num_classes=0).eval()
    images = (np.random.default_rng(1).random((3, 3, 64, 64)) * 255).astype(np.uint8)
    turned = np.ascontiguousarray(np.rot90(images, 1, axes=(-2, -1)))
    flipped = np.ascontiguousarray(images[..., ::-1])
    z = wsi.embed(model, images, batch_size=2, views="dihedral", crop=32)
    for other in (turned, flipped):
        np.testing.assert_allclose(wsi.embed(model, other, 2, "dihedral", crop=32), z, atol=1e-5)
    plain = wsi.embed(model, images, 2, "none", crop=32)
    assert np.abs(wsi.embed(model, turned, 2, "none", crop=32) - plain).max() > 1e-3
    views = dihedral(torch.arange(4.0).reshape(1, 1, 2, 2))
    assert len(views) == 8 and len({tuple(v.flatten().tolist()) for v in views}) == 8


def test_rotation_views_make_embeddings_blind_to_quarter_turns_but_not_to_mirroring():
    """``views: rotations`` (the default: 16 views of a patch's 4 windows, half the cost of ``dihedral``) averages
    the 4 quarter turns of each window: a turned patch embeds as the patch; its mirror image does not. Every name
    ``patches.test_views`` accepts has its views."""
    from gb_kedro.config.shared import TEST_VIEWS
    from gb_kedro.slides.patches import VIEWS, dihedral, rotations

    assert tuple(VIEWS) == TEST_VIEWS
    model = _model(num_classes=0).eval()
    images = (np.random.default_rng(2).random((3, 3, 64, 64)) * 255).astype(np.uint8)
    turned = np.ascontiguousarray(np.rot90(images, 1, axes=(-2, -1)))
    flipped = np.ascontiguousarray(images[..., ::-1])
    z = wsi.embed(model, images, batch_size=2, views="rotations", crop=32)
    np.testing.assert_allclose(wsi.embed(model, turned, 2, "rotations", crop=32), z, atol=1e-5)
    assert np.abs(wsi.embed(model, flipped, 2, "rotations", crop=32) - z).max() > 1e-3
    x = torch.arange(8.0).reshape(2, 1, 2, 2)
    assert [v.tolist() for v in rotations(x)] == [v.tolist() for v in dihedral(x)[:4]]


def test_patch_dataset_takes_the_centre_window_without_augmentation():
    images = np.arange(2 * 3 * 8 * 8, dtype=np.uint8).reshape(2, 3, 8, 8)
    data = wsi.PatchTensorDataset(images, np.array([0, 1]), augment=None, crop=4)
    x, labels, _mice, _targets = data.collate([data[1]])
    x, label = x[0], int(labels[0])
    assert label == 1 and x.shape == (3, 4, 4)
    torch.testing.assert_close(x, torch.from_numpy(images[1, :, 2:6, 2:6].copy()).float() / 255.0)


def test_anti_shortcut_terms_enter_the_loss_as_configured():
    """Cross-mouse positives change the triplet term; the morphometry target and the mouse adversary add
    their weighted terms (and train their heads); the dataset hands out mouse and target per item."""
    from gb_kedro.losses import reverse_gradient, within_label_group_loss

    model = _model()
    model.aux_head = torch.nn.Linear(model.config.dim, 4)
    model.mouse_head = torch.nn.Linear(model.config.dim, 6)
    x, labels = torch.rand(6, 3, 32, 32), torch.tensor([0, 0, 1, 1, 2, 2])
    mice, targets = torch.tensor([0, 1, 2, 3, 4, 5]), torch.randn(6, 4)
    plain = wsi.TripletStep(0.3, 0, 0.0, 16.0)(model, (x, labels, mice, targets), "cpu")
    cross = wsi.TripletStep(0.3, 0, 0.0, 16.0, cross_mouse=True)(model, (x, labels, mice, targets), "cpu")
    cls = model(x)["cls"].float()
    z = F.normalize(cls, dim=-1)
    torch.testing.assert_close(cross["triplet"], batch_hard_triplet(z, labels, 0.3, groups=mice))
    both = wsi.TripletStep(0.3, 0, 0.0, 16.0, morphometry_weight=2.0, mouse_adversary=0.5)
    out = both(model, (x, labels, mice, targets), "cpu")
    morph = F.mse_loss(model.aux_head(cls), targets)
    adv = within_label_group_loss(model.mouse_head(reverse_gradient(cls)), mice, labels)
    torch.testing.assert_close(out["loss"], plain["loss"] + 2.0 * morph + 0.5 * adv)
    out["loss"].backward()
    assert model.aux_head.weight.grad.abs().sum() > 0 and model.mouse_head.weight.grad.abs().sum() > 0
    data = wsi.PatchTensorDataset(
        (np.random.default_rng(0).random((2, 3, 32, 32)) * 255).astype(np.uint8),
        [0, 1],
        mice=[7, 8],
        targets=np.ones((2, 4)),
    )
    images, labels, mice, targets = data.collate([data[1], data[0]])
    assert labels.tolist() == [1, 0] and mice.tolist() == [8, 7]
    assert targets.shape == (2, 4) and images.shape == (2, 3, 32, 32) and images.dtype == torch.float32


def test_two_views_of_a_patch_are_its_own_positives_and_feed_the_lineage_losses():
    """Two views per item: the dataset draws them independently (other windows), one view is the old stream;
    the step scores every view in the lineage losses and adds NT-Xent with each patch's two views as the only
    positive pair (the head trained); a validation batch of one view has no such term."""
    from gb_kedro.losses import multi_positive_info_nce
    from gb_kedro.slides.augment import Augment

    images = (np.random.default_rng(0).random((3, 3, 64, 64)) * 255).astype(np.uint8)
    augment = Augment(True, 0.1, 0.02)
    torch.manual_seed(1)
    one = wsi.PatchTensorDataset(images, [0, 1, 2], augment, crop=32)
    single = one.collate([one[i] for i in range(3)])
    torch.manual_seed(1)
    two = wsi.PatchTensorDataset(images, [0, 1, 2], augment, crop=32, views=2)
    items = [two[i] for i in range(3)]
    assert items[0][0].shape == (2, 3, 32, 32) and not torch.equal(items[0][0][0], items[0][0][1])
    x, labels, mice, targets = two.collate(items)
    assert x.shape == (3, 2, 3, 32, 32) and labels.tolist() == [0, 1, 2]
    torch.manual_seed(1)
    first = two.collate([two[0]])[0][0]
    torch.testing.assert_close(first[0], single[0][0])  # the first view of the first item: the one-view draw

    model = _model()
    model.view_head = torch.nn.Linear(model.config.dim, 8)
    x, labels = torch.rand(3, 2, 3, 32, 32), torch.tensor([0, 1, 1])
    plain = wsi.TripletStep(0.3, 0, 1.0, 16.0)(model, (x.flatten(0, 1), labels.repeat_interleave(2)), "cpu")
    step = wsi.TripletStep(0.3, 0, 1.0, 16.0, view_weight=0.5, view_temperature=0.2)
    out = step(model, (x, labels), "cpu")
    cls = model(x.flatten(0, 1))["cls"].float()
    pair = multi_positive_info_nce(model.view_head(cls), torch.tensor([0, 0, 1, 1, 2, 2]), 0.2)
    torch.testing.assert_close(out["views"], pair)
    torch.testing.assert_close(out["loss"], plain["loss"] + 0.5 * pair)
    out["loss"].backward()
    assert model.view_head.weight.grad.abs().sum() > 0
    assert "views" not in step(model, (x[:, 0], labels), "cpu")
    with pytest.raises(ValueError, match="view_temperature"):
        wsi.TripletStep(0.3, 0, 1.0, 16.0, view_weight=0.5)  # no temperature of its own: it comes from conf/base


def test_a_projector_carries_the_lineage_losses_and_the_cls_before_it_stays_the_embedding():
    """``projector``: the softmax proxies and the triplet act on the normalised output of the model's MLP
    ``projector``, which the gradient reaches; without it they act on the CLS itself."""
    model = _model()
    model.projector = wsi.mlp_head(model.config.dim)
    x, labels = torch.rand(6, 3, 32, 32), torch.tensor([0, 0, 1, 1, 2, 2])
    out = wsi.TripletStep(0.3, 0, 0.5, 16.0, projector=True)(model, (x, labels), "cpu")
    cls = model(x)["cls"].float()
    z = F.normalize(model.projector(cls), dim=-1)
    ce = F.cross_entropy(16.0 * z @ F.normalize(model.head.weight, dim=-1).T, labels)
    torch.testing.assert_close(out["loss"], batch_hard_triplet(z, labels, 0.3) + 0.5 * ce)
    out["loss"].backward()
    assert model.projector[0].weight.grad.abs().sum() > 0
    plain = wsi.TripletStep(0.3, 0, 0.5, 16.0)(model, (x, labels), "cpu")
    on_cls = F.normalize(cls, dim=-1)
    ce_cls = F.cross_entropy(16.0 * on_cls @ F.normalize(model.head.weight, dim=-1).T, labels)
    torch.testing.assert_close(plain["loss"], batch_hard_triplet(on_cls, labels, 0.3) + 0.5 * ce_cls)
    assert not torch.isclose(plain["loss"], out["loss"])


def _small_index():
    """4 lineages x 2 mice x 6 patches; lineage L3 unseen, the second mouse of the others an unseen mouse."""
    import pandas as pd

    rows = []
    for lineage in range(4):
        for mouse in range(2):
            held = "lineage" if lineage == 3 else ("mouse" if mouse == 1 else "")
            for p in range(6):
                rows.append(
                    {
                        "slide_id": f"L{lineage}-m{mouse}",
                        "mouse_id": f"L{lineage}-m{mouse}",
                        "lineage_id": f"L{lineage}",
                        "patient_id": "P0",
                        "x": p,
                        "y": 0,
                        "split": "test" if held else "train",
                        "held_out": held,
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "terms",
    [{"view_weight": 1.0, "projector": True}, {"mim_epochs": 1, "mim_weight": 0.5}],
    ids=["two-views-and-projector", "masked-image"],
)
def test_the_self_supervised_terms_see_training_patches_only(tmp_path, monkeypatch, terms):
    """The two-view term and the masked-image warm start train on what the lineage losses train on: no patch of an
    unseen mouse or an unseen lineage is ever drawn (each patch's pixels carry its row number; every drawn item's
    row is recorded); their heads are dropped from the saved model."""

    from gb_kedro.config import PatchesConfig, WSIEncodingConfig
    from gb_kedro.datasets.patch_pixels import PatchPixels
    from tests.helpers import base_config

    index = _small_index()
    images = np.broadcast_to(np.arange(len(index), dtype=np.uint8)[:, None, None, None], (len(index), 3, 32, 32))
    drawn = {1: set(), 2: set()}

    class Recording(wsi.PatchTensorDataset):
        def __getitem__(self, i):
            drawn[self.views].add(int(self.images[i][0, 0, 0]))
            return super().__getitem__(i)

    monkeypatch.setattr(wsi, "PatchTensorDataset", Recording)
    options = base_options("wsi_encoding", device="cpu", checkpoint_dir=str(tmp_path), val_fraction=0.2)
    options["loss"].update(warmup_epochs=0, **terms)
    options["sampler"].update(p=3, k=2)
    options["train"].update(epochs=2)
    cfg = WSIEncodingConfig.from_dict(options)
    patches = base_config(PatchesConfig, "patches", read_px=32, model_px=16)
    model, history = wsi.train_encoder(index, PatchPixels(np.ascontiguousarray(images), "k"), cfg, patches)
    term = "views" if "view_weight" in terms else "mim"
    assert len(history) == 2 and history[f"train/{term}"].notna().all()
    assert not any(hasattr(model, h) for h in ("view_head", "projector", "mask_token", "mim_decoder"))
    train = set(np.flatnonzero(index["split"] == "train"))
    two_views = "view_weight" in terms
    assert bool(drawn[2]) == two_views and drawn[2] <= train and drawn[1] <= train  # training set; validation rows
    assert not (drawn[1] | drawn[2]) & set(np.flatnonzero(index["held_out"] != ""))


def test_a_conv_stem_gives_the_same_tokens_and_survives_a_reload():
    """``stem: conv``: one token per 16x16 sub-patch as the patchify stem gives, rebuilt from its saved config
    to the same outputs (batch norm in eval mode); a patch size that is not a power of two, or another stem name
    in the parameters, is refused."""
    from gb_kedro.config import WSIEncodingConfig
    from gb_kedro.errors import InputDataError
    from gb_kedro.models.vit import VisionTransformer

    x = torch.rand(4, 3, 64, 64)
    torch.manual_seed(0)
    conv = vit("tiny", img_size=64, stem="conv").eval()
    with torch.no_grad():
        out = conv(x)
    assert out["tokens"].shape == _model(img=64).eval()(x)["tokens"].shape == (4, 16, 96)
    again = VisionTransformer.from_config(conv.config_dict())
    again.load_state_dict(conv.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x)["cls"], out["cls"])
    with pytest.raises(ValueError, match="power-of-two"):
        vit("tiny", img_size=48, patch_size=12, stem="conv")
    options = base_options("wsi_encoding")
    options["model"]["stem"] = "resnet"
    with pytest.raises(InputDataError, match="wsi_encoding.model.stem"):
        WSIEncodingConfig.from_dict(options)


def test_masked_image_modelling_hides_sub_patches_and_warms_up_alone():
    """SimMIM: the hidden sub-patches' pixels reach no token (conv stem included) and are the only ones scored,
    against each sub-patch's standardised pixels; the warm-start epochs train that term alone, then the lineage
    schedule starts (softmax warm-up counted from there) with the term at its weight; a missing ratio is refused."""
    from gb_kedro.losses import masked_patch_loss
    from gb_kedro.models.vit import patchify

    torch.manual_seed(0)
    model = vit("tiny", img_size=32, num_classes=3, stem="conv").eval()
    model.mask_token = torch.nn.Parameter(torch.randn(1, 1, model.config.dim))
    model.mim_decoder = torch.nn.Linear(model.config.dim, 3 * 16 * 16)
    x = torch.rand(2, 3, 32, 32)
    mask = torch.tensor([[True, False, False, False], [False, False, False, True]])
    changed = x.clone()
    changed[0, :, :16, :16] = torch.rand(3, 16, 16)  # image 0's hidden sub-patch (top left)
    changed[1, :, 16:, 16:] = torch.rand(3, 16, 16)  # image 1's (bottom right)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(changed, mask), model.forward_features(x, mask))
        assert not torch.allclose(model.forward_features(changed), model.forward_features(x))
    target = patchify(x, 16)
    assert target.shape == (2, 4, 768)
    torch.testing.assert_close(target[1, 3], x[1, :, 16:, 16:].permute(1, 2, 0).reshape(-1))
    exact = (target - target.mean(-1, keepdim=True)) / target.var(-1, keepdim=True).add(1e-6).sqrt()
    wrong_where_visible = torch.where(mask[..., None], exact, torch.zeros_like(exact))
    assert masked_patch_loss(wrong_where_visible, target, mask) < 1e-6  # visible tokens are not scored
    assert masked_patch_loss(torch.zeros_like(exact), target, mask) > 0.9  # ~1: unit variance per sub-patch

    labels = torch.tensor([0, 1])
    step = wsi.TripletStep(0.3, 1, 1.0, 16.0, mim_epochs=2, mim_weight=0.5, mim_ratio=0.25)
    torch.manual_seed(3)
    warm = step(model, (x, labels), "cpu")
    assert set(warm) == {"loss", "mim"}
    torch.manual_seed(3)
    torch.testing.assert_close(warm["loss"], wsi.masked_image_loss(model, x, 0.25))
    lineage = wsi.TripletStep(0.3, 1, 1.0, 16.0)
    for epoch, lineage_epoch in ((2, 0), (3, 1)):  # softmax warm-up, then triplet: counted after the warm start
        step.set_epoch(epoch)
        lineage.set_epoch(lineage_epoch)
        torch.manual_seed(3)
        out = step(model, (x, labels), "cpu")
        plain = lineage(model, (x, labels), "cpu")
        torch.testing.assert_close(out["loss"], plain["loss"] + 0.5 * out["mim"])
    warm_start_only = wsi.TripletStep(0.3, 0, 1.0, 16.0, mim_epochs=1, mim_weight=0.0, mim_ratio=0.25)
    warm_start_only.set_epoch(1)
    assert "mim" not in warm_start_only(model, (x, labels), "cpu")  # weight 0 afterwards: not even computed
    with pytest.raises(ValueError, match="mim_ratio"):
        wsi.TripletStep(0.3, 0, 1.0, 16.0, mim_epochs=2)


@pytest.mark.parametrize(
    ("loss", "message"),
    [({"mim_ratio": 1.0}, "mim_ratio"), ({"mim_epochs": 80}, "mim_epochs")],
)
def test_masked_image_settings_out_of_range_are_refused(loss, message):
    from gb_kedro.config import WSIEncodingConfig
    from gb_kedro.errors import InputDataError

    options = base_options("wsi_encoding")
    options["loss"].update(loss)
    options["train"].update(epochs=80)
    with pytest.raises(InputDataError, match=message):
        WSIEncodingConfig.from_dict(options)


def test_within_lineage_morphometry_targets_are_what_the_lineage_does_not_predict():
    """``morphometry_within_lineage``: each standardised feature less its lineage's mean, scaled to unit spread; a
    feature fixed by the lineage (its identity, nothing else) leaves a target of 0; without it, the standardised
    features themselves."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    by_lineage = np.array([1.0, 5.0, 9.0])[labels]
    texture = by_lineage + rng.normal(size=60)
    values = np.column_stack([by_lineage, texture])
    plain = wsi.morphometry_targets(values, labels, within_lineage=False)
    np.testing.assert_allclose(plain.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(plain.std(0), 1.0, atol=1e-5)
    within = wsi.morphometry_targets(values, labels, within_lineage=True)
    np.testing.assert_array_equal(within[:, 0], 0.0)
    for lineage in range(3):
        np.testing.assert_allclose(within[labels == lineage, 1].mean(), 0.0, atol=1e-5)
    assert abs(within[:, 1].std() - 1.0) < 1e-5
    residual = texture - np.array([texture[labels == i].mean() for i in range(3)])[labels]
    assert np.corrcoef(within[:, 1], residual)[0, 1] > 0.999


def test_an_unknown_morphometry_target_is_refused_before_training(tmp_path):
    import pandas as pd

    from gb_kedro.config import PatchesConfig, WSIEncodingConfig
    from gb_kedro.datasets.patch_pixels import PatchPixels
    from gb_kedro.errors import InputDataError
    from gb_kedro.slides.morphometry import ALL_FEATURES
    from tests.helpers import base_config

    index = pd.DataFrame(
        {"lineage_id": ["L0", "L0", "L1", "L1"], "mouse_id": ["m0", "m0", "m1", "m1"], "split": "train"}
    ).assign(slide_id=lambda f: f["mouse_id"], held_out="")
    features = pd.DataFrame(np.zeros((4, len(ALL_FEATURES))), columns=list(ALL_FEATURES))
    options = base_options("wsi_encoding", device="cpu", checkpoint_dir=str(tmp_path))
    options["loss"].update(morphometry_weight=1.0, morphometry_targets=["chromatin_cv", "chromatin_entropy"])
    cfg = WSIEncodingConfig.from_dict(options)
    patches = base_config(PatchesConfig, "patches", read_px=32, model_px=16)
    images = PatchPixels(np.zeros((4, 3, 32, 32), np.uint8), "k")
    with pytest.raises(InputDataError, match="not morphometry features: chromatin_entropy"):
        wsi.train_encoder(index, images, cfg, patches, features)


def test_neighbour_batches_follow_the_current_proxies_from_the_second_epoch(tmp_path, monkeypatch):
    """``neighbour_batches``: the first epoch's batches are random lineages (the proxies are untrained), each later
    epoch's sampler gets the lineage proxies' cosine similarity as they are at that epoch's start."""
    from gb_kedro.config import PatchesConfig, WSIEncodingConfig
    from gb_kedro.datasets.patch_pixels import PatchPixels
    from tests.helpers import base_config

    seen = []

    class Recording(wsi.PKSampler):
        def __init__(self, *args, similarity=None, **kwargs):
            seen.append(None if similarity is None else similarity.copy())
            super().__init__(*args, similarity=similarity, **kwargs)

    monkeypatch.setattr(wsi, "PKSampler", Recording)
    index = _small_index()
    images = (np.random.default_rng(0).random((len(index), 3, 32, 32)) * 255).astype(np.uint8)
    options = base_options("wsi_encoding", device="cpu", checkpoint_dir=str(tmp_path), val_fraction=0.0)
    options["loss"].update(warmup_epochs=3, neighbour_batches=True)
    options["sampler"].update(p=2, k=2)
    options["train"].update(epochs=3)
    cfg = WSIEncodingConfig.from_dict(options)
    patches = base_config(PatchesConfig, "patches", read_px=32, model_px=16)
    epochs = []
    original = wsi.proxy_similarity
    monkeypatch.setattr(wsi, "proxy_similarity", lambda model: epochs.append(original(model)) or epochs[-1])
    wsi.train_encoder(index, PatchPixels(images, "k"), cfg, patches)
    assert seen[0] is None and len(epochs) >= 2 and all(s is not None for s in seen[-2:])
    assert epochs[0].shape == (3, 3) and np.allclose(np.diag(epochs[0]), 1.0, atol=1e-5)
    assert not np.allclose(epochs[0], epochs[-1])  # read again as the proxies train

"""Unit tests of the WSI stage module: the warm-up/triplet switch, window-averaged embeddings, crops."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gb_kedro import wsi_encoding as wsi
from gb_kedro.losses import batch_hard_triplet
from gb_kedro.models.vit import vit
from gb_kedro.slides.patches import windows


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

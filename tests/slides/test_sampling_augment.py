import numpy as np
import torch

from gb_kedro.slides.augment import Augment, StainMix, hed_jitter, stain_statistics, stain_transfer
from gb_kedro.slides.patches import apply_views, draw_view, training_view
from gb_kedro.slides.sampling import PKSampler


def test_pk_batches():
    labels = np.repeat(np.arange(6), [10, 10, 3, 10, 1, 10])
    sampler = PKSampler(labels, p=4, k=3, seed=0)
    batches = list(sampler)
    assert len(batches) == len(labels) // 12
    for batch in batches:
        assert len(batch) == 12
        counts = np.bincount(labels[batch], minlength=6)
        assert sorted(c for c in counts if c) == [3, 3, 3, 3]  # P lineages x K patches, >= 2 per lineage
    assert list(PKSampler(labels, 4, 3, seed=0)) == batches  # seeded


def test_neighbour_batches_are_a_label_and_its_nearest_labels():
    """``similarity``: every batch is one random label and the p - 1 labels most similar to it; each label still
    starts batches (the first label is drawn at random)."""
    labels = np.repeat(np.arange(6), 8)
    similarity = np.eye(6)
    for a, b, s in [(0, 1, 0.9), (2, 3, 0.8), (4, 5, 0.7)]:  # three pairs of look-alike lineages
        similarity[a, b] = similarity[b, a] = s
    batches = list(PKSampler(labels, p=2, k=3, seed=0, similarity=similarity))
    pairs = {tuple(sorted(set(labels[b].tolist()))) for b in batches}
    assert pairs <= {(0, 1), (2, 3), (4, 5)} and len(pairs) > 1
    for batch in batches:
        assert len(batch) == 6 and sorted(np.bincount(labels[batch])[np.bincount(labels[batch]) > 0]) == [3, 3]
    plain = {tuple(sorted(set(labels[b].tolist()))) for b in PKSampler(labels, p=2, k=3, seed=0)}
    assert not plain <= {(0, 1), (2, 3), (4, 5)}  # random labels without it


def test_augmentations_keep_shape_range_and_are_stain_safe():
    torch.manual_seed(0)
    image = (torch.rand(3, 32, 32) * 255).to(torch.uint8).numpy()
    x = torch.from_numpy(image).float() / 255
    y = training_view(image, augment=Augment(True, 0.15, 0.03))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    torch.manual_seed(1)
    jittered = hed_jitter(x.clamp(0.05, 1), 0.2, 0.05)
    torch.manual_seed(1)
    assert torch.equal(jittered, hed_jitter(x.clamp(0.05, 1), 0.2, 0.05))  # seeded: reproducible
    assert (jittered - x.clamp(0.05, 1)).abs().max() > 0.01  # and it does change the stain
    torch.testing.assert_close(hed_jitter(x.clamp(0.05, 1), 0.0, 0.0), x.clamp(0.05, 1), atol=1e-4, rtol=1e-4)
    rotated = training_view(image, augment=Augment(True, 0.0, 0.0))
    assert sorted(rotated.flatten().tolist()) == sorted(x.flatten().tolist())  # pixels moved, not changed


def _per_item_view(image, crop, augment, stain, slide):
    """The view of one item, pixel work item by item, random numbers in the documented order: the reference the
    batched :func:`apply_views` must reproduce bit for bit."""
    size = image.shape[-1]
    if augment is not None:
        y0, x0 = int(torch.randint(size - crop + 1, (1,))), int(torch.randint(size - crop + 1, (1,)))
    else:
        y0 = x0 = (size - crop) // 2
    x = torch.from_numpy(image[:, y0 : y0 + crop, x0 : x0 + crop].copy()).float() / 255.0
    if stain is not None and float(torch.rand(1)) < stain.p:
        other = int(torch.randint(len(stain.statistics), (1,)))
        x = stain_transfer(x, stain.statistics[slide], stain.statistics[other])
    if augment is not None:
        if torch.rand(1).item() < 0.5:
            x = x.flip(-1)
        x = torch.rot90(x, int(torch.randint(4, (1,))), dims=(-2, -1))
        x = hed_jitter(x, augment.hed_sigma, augment.hed_bias)
    return x


def test_batched_views_equal_the_item_by_item_views():
    """The batch's pixel work (one stain transfer, one HED jitter for all items) gives bit for bit the pixels of
    the item-by-item reference with the same seed: batching changed the speed, not the training data."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 3, 48, 48), dtype=np.uint8)
    slides = np.arange(12) % 4
    stats = stain_statistics(images, slides, 4)
    for p, augment in [(1.0, Augment(True, 0.15, 0.03)), (0.5, Augment(True, 0.15, 0.03)), (0.0, None)]:
        stain = StainMix(stats, p) if p else None
        torch.manual_seed(5)
        expected = torch.stack([_per_item_view(images[i], 32, augment, stain, int(slides[i])) for i in range(12)])
        torch.manual_seed(5)
        drawn = [draw_view(images[i], 32, augment, stain, int(slides[i])) for i in range(12)]
        batched = apply_views(torch.stack([w for w, _ in drawn]), torch.stack([d for _, d in drawn]), stain)
        assert torch.equal(batched, expected), p
        torch.manual_seed(5)
        one_by_one = torch.stack([training_view(images[i], 32, augment, stain, int(slides[i])) for i in range(12)])
        assert torch.equal(one_by_one, expected)
        centre = torch.from_numpy(images[:, :, 8:40, 8:40].copy()).float() / 255
        assert torch.equal(batched, centre) == (augment is None)  # without augmentation: the centre windows


def test_cross_mouse_batches_spread_each_lineage_over_its_mice():
    labels = np.repeat(np.arange(4), 12)
    mice = np.concatenate([np.repeat([10 * lab, 10 * lab + 1, 10 * lab + 2], 4) for lab in range(4)])
    for batch in PKSampler(labels, p=3, k=4, seed=0, groups=mice):
        for lab in np.unique(labels[batch]):
            picked = mice[[i for i in batch if labels[i] == lab]]
            assert len(set(picked)) == 3  # 4 patches of a lineage: all 3 of its mice, none twice before all once


def test_stain_transfer_gives_the_other_slides_stain_and_keeps_the_layout():
    from gb_kedro.slides.augment import HED_FROM_RGB

    rng = np.random.default_rng(0)
    layout = rng.random((1, 32, 32)) > 0.7  # nuclei
    light = np.where(layout, 120, 220).repeat(3, 0)[None].astype(np.uint8)
    light[:, 2] = np.where(layout[0], 160, 230)
    dark = (light * 0.7).astype(np.uint8)
    images = np.concatenate([light, dark])
    stats = stain_statistics(images, np.array([0, 1]), 2)
    assert stats.shape == (2, 2, 3) and not np.allclose(stats[0, 0], stats[1, 0])
    x = torch.from_numpy(light[0]).float() / 255
    y = stain_transfer(x, stats[0], stats[1])
    od = -torch.log10(y.clamp(min=1 / 255)).permute(1, 2, 0).reshape(-1, 3) @ HED_FROM_RGB
    np.testing.assert_allclose(od.mean(0).numpy(), stats[1, 0], atol=0.02)  # the other slide's stain ...
    assert torch.equal((y.mean(0) < y.mean(0).mean()), torch.from_numpy(layout[0]))  # ... on the same nuclei
    image = light[0]
    torch.manual_seed(0)
    assert torch.equal(training_view(image, stain=StainMix(stats, 0.0)), x)  # p = 0: untouched


def test_triplet_positives_from_other_mice_only():
    """With groups, an anchor's positive is never from its own mouse (slide identity cannot pull it close)."""
    from gb_kedro.losses import batch_hard_triplet

    # anchor 0: same-mouse positive 1 far away (distance 3), other-mouse positive 2 close (1), negative 3 at 2
    e = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, -2.0]])
    labels, mice = torch.tensor([0, 0, 0, 1]), torch.tensor([7, 7, 8, 9])
    plain = batch_hard_triplet(e, labels, margin=0.5)
    cross = batch_hard_triplet(e, labels, margin=0.5, groups=mice)
    # anchors with a valid positive: plain 0, 1, 2; cross-mouse 0 (-> 2), 1 (-> 2), 2 (-> 0 or 1, the farther)
    d = torch.cdist(e, e)
    expect = torch.stack(
        [
            torch.relu(d[0, 2] - d[0, 3] + 0.5),
            torch.relu(d[1, 2] - d[1, 3] + 0.5),
            torch.relu(torch.max(d[2, 0], d[2, 1]) - d[2, 3] + 0.5),
        ]
    ).mean()
    torch.testing.assert_close(cross, expect)
    assert not torch.isclose(plain, cross)

import numpy as np
import torch

from gb_kedro.slides.augment import Augment, flip_rotate, hed_jitter
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


def test_augmentations_keep_shape_range_and_are_stain_safe():
    torch.manual_seed(0)
    x = torch.rand(3, 32, 32)
    y = Augment(True, 0.15, 0.03)(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    torch.manual_seed(1)
    jittered = hed_jitter(x.clamp(0.05, 1), 0.2, 0.05)
    torch.manual_seed(1)
    assert torch.equal(jittered, hed_jitter(x.clamp(0.05, 1), 0.2, 0.05))  # seeded: reproducible
    assert (jittered - x.clamp(0.05, 1)).abs().max() > 0.01  # and it does change the stain
    torch.testing.assert_close(hed_jitter(x.clamp(0.05, 1), 0.0, 0.0), x.clamp(0.05, 1), atol=1e-4, rtol=1e-4)
    rotated = flip_rotate(x)
    assert sorted(rotated.flatten().tolist()) == sorted(x.flatten().tolist())  # pixels moved, not changed

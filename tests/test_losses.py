import math

import pytest
import torch

from gb_kedro.losses import multi_positive_info_nce


def test_contrastive_loss_by_hand():
    # Two pairs of identical unit vectors, orthogonal between pairs, t = 1:
    # anchor 0: positive sim 1, negatives sim 0 -> l = -log(e / (e + 2)) = log(e + 2) - 1, same for all.
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    loss = multi_positive_info_nce(z, torch.tensor([0, 0, 1, 1]), temperature=1.0)
    assert float(loss) == pytest.approx(math.log(math.e + 2) - 1)


def test_several_positives_and_anchors_without_positive():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])  # anchor 3 has no positive and is skipped
    t = 0.5
    loss = multi_positive_info_nce(z, labels, t)
    sims = z @ z.T / t
    expected = []
    for i in range(3):
        denom = sum(math.exp(sims[i, a]) for a in range(4) if a != i)
        pos = [j for j in range(3) if j != i]
        expected.append(-sum(float(sims[i, p]) - math.log(denom) for p in pos) / len(pos))
    assert float(loss) == pytest.approx(sum(expected) / 3, rel=1e-5)


def test_gradient_flows():
    z = torch.randn(6, 4, requires_grad=True)
    multi_positive_info_nce(z, torch.tensor([0, 0, 1, 1, 2, 2]), 0.1).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_batch_hard_triplet_by_hand():
    from gb_kedro.losses import batch_hard_triplet

    # labels 0: (0,0), (1,0); labels 1: (0,3), (0,4); margin 2.5
    # anchor 0: d+ = 1, d- = 3 -> 0.5; anchor 1: d+ = 1, d- = sqrt(10) -> 3.5 - sqrt(10);
    # anchor 2: d+ = 1, d- = 3 -> 0.5; anchor 3: d+ = 1, d- = 4 -> 0.
    e = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 4.0]])
    loss = batch_hard_triplet(e, torch.tensor([0, 0, 1, 1]), margin=2.5)
    assert float(loss) == pytest.approx((0.5 + 3.5 - math.sqrt(10) + 0.5 + 0.0) / 4, rel=1e-5)
    assert float(batch_hard_triplet(e, torch.tensor([0, 1, 2, 3]), 1.0)) == 0.0  # no positives


def test_cross_modal_info_nce_two_positives_by_hand():
    import math

    from gb_kedro.losses import cross_modal_info_nce

    # images a0, a1 (lineage 0, 1); RNA rows b0, b1 (lineage 0), b2 (lineage 1). Unit vectors in 2-D.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    la, lb, t = torch.tensor([0, 1]), torch.tensor([0, 0, 1]), 0.5
    s = [[1.0, 0.6, 0.0], [0.0, 0.8, 1.0]]  # a . b

    def log_softmax(row, j):
        return row[j] / t - math.log(sum(math.exp(v / t) for v in row))

    a2b = (-(log_softmax(s[0], 0) + log_softmax(s[0], 1)) / 2 - log_softmax(s[1], 2)) / 2
    cols = [[s[0][j], s[1][j]] for j in range(3)]  # b_j . a_i
    b2a = (-log_softmax(cols[0], 0) - log_softmax(cols[1], 0) - log_softmax(cols[2], 1)) / 3
    expected = (a2b + b2a) / 2
    assert cross_modal_info_nce(a, b, la, lb, t).item() == pytest.approx(expected, rel=1e-5)


def test_hard_negatives_never_positive_and_favour_hard_ones():
    from gb_kedro.losses import sample_hard_negatives

    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    pos = labels[:, None] == labels[None, :]
    sim = torch.randn(7, 7, generator=g) * 5
    sim[pos] = 100.0  # positives are the most similar: a naive argmax would pick them
    for _ in range(200):
        idx = sample_hard_negatives(sim, pos, generator=g)
        assert not pos[torch.arange(7), idx].any()
    hard = torch.zeros(2, 4)
    hard[:, 3] = 5.0  # column 3 is the hardest negative
    picks = torch.stack(
        [sample_hard_negatives(hard, torch.tensor([[True, False, False, False]] * 2), generator=g) for _ in range(300)]
    )
    assert (picks == 3).float().mean() > 0.9
    with pytest.raises(ValueError, match="no negative"):
        sample_hard_negatives(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))


def test_gradient_reversal_flips_the_gradient_and_keeps_the_value():
    from gb_kedro.losses import reverse_gradient

    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.tensor([3.0, 4.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-1.5, -2.0]))


def test_mouse_adversary_tells_apart_only_the_mice_of_the_patch_lineage():
    """Mice of other lineages are not candidates (that would be lineage identity, which the encoder must keep)."""
    import torch.nn.functional as F

    from gb_kedro.losses import within_label_group_loss

    labels = torch.tensor([0, 0, 1, 1, 2])
    mice = torch.tensor([0, 1, 2, 3, 4])  # lineage 0: mice 0, 1; lineage 1: mice 2, 3; lineage 2: mouse 4 alone
    logits = torch.randn(5, 5)
    loss = within_label_group_loss(logits, mice, labels)
    own = [[0, 1], [0, 1], [2, 3], [2, 3]]  # the item of lineage 2 has nothing to tell apart: left out
    expect = torch.stack(
        [F.cross_entropy(logits[i, own[i]][None], torch.tensor([own[i].index(int(mice[i]))])) for i in range(4)]
    )
    torch.testing.assert_close(loss, expect.mean())
    logits[:, 4] = 100.0  # another lineage's mouse scoring high changes nothing
    logits[4] = 0.0
    torch.testing.assert_close(within_label_group_loss(logits, mice, labels), loss, atol=1e-5, rtol=1e-5)

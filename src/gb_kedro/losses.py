"""Losses of the method, one function per equation.

Under data-parallel training (:mod:`gb_kedro.distributed`) the batch-level losses (eq. 3-4, 6, 7-8) take
``gather=True`` from the step that calls them: they first gather the embeddings and labels of every rank, with
gradient (open_clip's ``gather_with_grad``), so positives and negatives span the global batch and each rank
computes the loss of the whole batch. ``gather=False`` (one process, or a validation pass where every rank
scores the same data) keeps the rank's own rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gb_kedro.distributed import gather_rows


def _rows(gather: bool, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return [gather_rows(t) for t in tensors] if gather else list(tensors)


def multi_positive_info_nce(
    z: torch.Tensor, labels: torch.Tensor, temperature: float, gather: bool = False
) -> torch.Tensor:
    """Pairwise contrastive loss (paper eq. 3-4) with several positives per anchor.

    For anchor i, positives P(i) = {j != i : labels[j] == labels[i]}; all j != i are in the denominator::

        l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t) )

    Anchors without a positive are skipped; the loss is the mean over the others.

    Args:
        z: [N, D] embeddings (normalised here).
        labels: [N] integer labels (same label = positive pair: same lineage, or two views of a sample).
        temperature: t.
        gather: rows of every rank (data-parallel training), with gradient.
    """
    z, labels = _rows(gather, z, labels)
    z = F.normalize(z.float(), dim=-1)
    n = z.shape[0]
    sim = z @ z.T / temperature
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    n_pos = positives.sum(dim=1)
    valid = n_pos > 0
    if not valid.any():
        return z.sum() * 0.0
    per_anchor = -log_prob.masked_fill(~positives, 0.0).sum(dim=1) / n_pos.clamp(min=1)
    return per_anchor[valid].mean()


def batch_hard_triplet(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    groups: torch.Tensor | None = None,
    gather: bool = False,
) -> torch.Tensor:
    """Triplet loss (paper eq. 6) with batch-hard online mining.

    For each anchor: its hardest positive (the farthest same-label sample) and hardest negative (the
    closest other-label sample), Euclidean distances; loss = mean over anchors having both of
    ``max(0, d(a, p) - d(a, n) + margin)``.

    Args:
        embeddings: [N, D]; labels: [N].
        groups: [N] (e.g. the mouse of each patch): a positive must come from another group than its
            anchor -- the same lineage on another slide, so slide identity cannot make a positive close.
        gather: rows of every rank (data-parallel training), with gradient.
    """
    x, labels = _rows(gather, embeddings, labels)
    x = x.float()
    dist_ = torch.cdist(x, x)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=x.device)
    pos = same & ~eye
    if groups is not None:
        (groups,) = _rows(gather, groups)
        pos = pos & (groups[:, None] != groups[None, :])
    neg = ~same
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        return x.sum() * 0.0
    hardest_pos = dist_.masked_fill(~pos, float("-inf")).max(1).values
    hardest_neg = dist_.masked_fill(~neg, float("inf")).min(1).values
    return torch.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def cross_modal_info_nce(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    labels_a: torch.Tensor,
    labels_b: torch.Tensor,
    temperature: float,
    gather: bool = False,
) -> torch.Tensor:
    """Symmetric image<->RNA contrastive alignment (paper eq. 7-8, ALBEF's ITC) with several positives.

    s_ij = z_a_i . z_b_j / t (embeddings normalised here); the positives of a_i are the b_j with the same
    label (same lineage), and the target distribution is uniform over them::

        L_a2b = mean_i -1/|P(i)| sum_{j in P(i)} log softmax_j(s_i.)
        L     = (L_a2b + L_b2a) / 2          (L_b2a: the same on s.T)

    Anchors without a positive are skipped.

    Args:
        z_a: [Na, E]; z_b: [Nb, E]; labels_a: [Na]; labels_b: [Nb]; temperature: t.
        gather: rows of every rank (data-parallel training), with gradient.
    """
    z_a, z_b, labels_a, labels_b = _rows(gather, z_a, z_b, labels_a, labels_b)
    a = F.normalize(z_a.float(), dim=-1)
    b = F.normalize(z_b.float(), dim=-1)
    sim = a @ b.T / temperature
    positives = labels_a[:, None] == labels_b[None, :]

    def one_way(s: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        log_prob = s - torch.logsumexp(s, dim=1, keepdim=True)
        n_pos = pos.sum(dim=1)
        valid = n_pos > 0
        per_anchor = -log_prob.masked_fill(~pos, 0.0).sum(dim=1) / n_pos.clamp(min=1)
        return per_anchor[valid].mean() if valid.any() else s.sum() * 0.0

    return (one_way(sim, positives) + one_way(sim.T, positives.T)) / 2


def sample_hard_negatives(
    similarity: torch.Tensor, positives: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """ALBEF's hard negatives for the matching head: for each row i, one column j drawn with probability
    softmax(similarity_i) over the NON-positive columns (positives get probability 0).

    Args:
        similarity: [N, M] (e.g. image-to-RNA similarities / t); positives: bool [N, M].

    Returns:
        [N] column indices, never a positive. Rows whose columns are all positive raise ValueError.
    """
    if (positives.all(dim=1)).any():
        raise ValueError("a row has no negative to draw (every candidate is a positive): batches need several lineages")
    logits = similarity.detach().float().masked_fill(positives, float("-inf"))
    weights = torch.softmax(logits, dim=1)
    weights = torch.nan_to_num(weights, nan=0.0).masked_fill(positives, 0.0)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient multiplied by ``-scale`` backward (Ganin & Lempitsky's gradient reversal):
    a head trained on top learns to predict its target while the features below learn to hide it."""
    return _ReverseGradient.apply(x, scale)


def within_label_group_loss(logits: torch.Tensor, groups: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``groups`` (e.g. the mouse of each patch) restricted to the groups of each item's own
    label (its lineage's mice): what tells mice of one lineage apart is slide identity, never lineage.

    Args:
        logits: [N, G] over all groups; groups: [N] in 0..G-1; labels: [N] (the group's lineage is the item's).
    """
    n_groups = logits.shape[1]
    same = torch.zeros(int(labels.max()) + 1, n_groups, dtype=torch.bool, device=logits.device)
    same[labels, groups] = True  # groups seen with each label in this batch
    masked = logits.masked_fill(~same[labels], float("-inf"))
    several = same[labels].sum(1) > 1  # a lineage with one mouse in the batch has nothing to tell apart
    if not several.any():
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(masked[several], groups[several])


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked-image modelling (SimMIM / MAE's ``norm_pix_loss``): the mean squared error between predicted and
    true pixels of the hidden sub-patches only, each true sub-patch standardised by its own mean and variance (the
    target is its texture, not its colour or brightness).

    Args:
        pred: [N, L, P] predicted pixels per token.
        target: [N, L, P] true pixels per token (:func:`gb_kedro.models.vit.patchify`).
        mask: [N, L] bool, True = hidden (scored).
    """
    target = target.float()
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1e-6).sqrt()
    per_token = ((pred.float() - target) ** 2).mean(dim=-1)
    hidden = mask.float()
    return (per_token * hidden).sum() / hidden.sum().clamp(min=1.0)

"""Batches of P lineages x K patches, for triplet mining inside the batch."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class PKSampler(Sampler[list[int]]):
    """Each batch: ``p`` distinct labels, ``k`` items of each (drawn with replacement when a label has
    fewer than ``k`` items). An epoch has ``len(labels) // (p * k)`` batches (at least one).

    ``similarity`` (labels x labels, indexed by the integer labels): each batch is a random label and the ``p - 1``
    labels most similar to it (e.g. by the current lineage proxies) instead of ``p`` random labels -- batches of
    lineages the model confuses, whose differences are the finer cues (hard-class mining)."""

    def __init__(self, labels, p: int, k: int, seed: int = 0, groups=None, similarity=None):
        self.labels = np.asarray(labels)
        self.by_label = {lab: np.flatnonzero(self.labels == lab) for lab in np.unique(self.labels)}
        # groups (e.g. mice): the k items of a label are spread over its groups, round-robin in random order
        self.groups = None if groups is None else np.asarray(groups)
        if len(self.by_label) < 2:
            raise ValueError("PK sampling needs at least two labels")
        self.p = min(p, len(self.by_label))
        self.k = max(k, 2)
        self.seed = seed
        self.similarity = None if similarity is None else np.asarray(similarity, float)

    def __len__(self) -> int:
        return max(1, len(self.labels) // (self.p * self.k))

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        keys = list(self.by_label)
        for _ in range(len(self)):
            chosen = rng.choice(len(keys), size=self.p, replace=False)
            if self.similarity is not None:  # a random label and its nearest labels
                row = self.similarity[keys[chosen[0]], keys]
                row[chosen[0]] = np.inf  # itself first
                chosen = np.argsort(-row + rng.random(len(keys)) * 1e-9, kind="stable")[: self.p]
            batch = []
            for c in chosen:
                items = self.by_label[keys[c]]
                if self.groups is None:
                    batch.extend(rng.choice(items, size=self.k, replace=len(items) < self.k).tolist())
                else:
                    batch.extend(self._spread(items, rng))
            yield batch

    def _spread(self, items: np.ndarray, rng: np.random.Generator) -> list[int]:
        """``k`` items of one label drawn round-robin over its groups (random group order, random item)."""
        by_group = [items[self.groups[items] == g] for g in rng.permutation(np.unique(self.groups[items]))]
        return [int(rng.choice(by_group[i % len(by_group)])) for i in range(self.k)]

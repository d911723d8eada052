"""A bounded-memory, class-balanced sample of a stream of labelled features
(for :class:`~sar_plugin.evaluation.FeatureCompactnessMetric`)."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


class ClassBalancedReservoir:
    """Keep a uniform sample of at most ``per_class`` features per class.

    Reservoir sampling (Vitter's algorithm R) independently per class over a
    stream of ``(features, labels)`` batches: the ``t``-th feature of a
    class (0-based) is kept when ``t < per_class``, else it replaces slot
    ``r ~ U{0..t}`` when ``r < per_class``. Every feature seen of a class is
    thus kept with the same probability ``min(1, per_class / seen)``.
    Memory is ``K x per_class x C`` floats. Seeded (numpy generator).

    Args:
        num_classes (int): K; labels outside ``[0, K)`` are ignored.
        per_class (int): Samples kept per class.
        seed (int): Seed of the replacement draws.
    """

    def __init__(self, num_classes: int, per_class: int = 256,
                 seed: int = 0) -> None:
        self.num_classes = num_classes
        self.per_class = per_class
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.buffers: List[Optional[Tensor]] = [None] * self.num_classes
        self.filled = np.zeros(self.num_classes, np.int64)
        self.seen = np.zeros(self.num_classes, np.int64)

    def update(self, features: Tensor, labels: Tensor) -> None:
        """Add a batch: ``features`` ``M x C`` with ``labels`` ``M``, or
        ``N x C x H x W`` / ``C x H x W`` with labels ``N x H x W`` /
        ``H x W``."""
        if features.dim() >= 3:
            if features.dim() == 3:
                features = features[None]
            features = features.permute(0, 2, 3, 1).reshape(
                -1, features.shape[1])
        features = features.detach().float().cpu()
        labels = labels.detach().reshape(-1).long().cpu()
        if labels.numel() != features.shape[0]:
            raise ValueError(f'{labels.numel()} labels for '
                             f'{features.shape[0]} features')
        lab = labels.numpy()
        for c in np.unique(lab):
            if c < 0 or c >= self.num_classes:
                continue
            idx = np.nonzero(lab == c)[0]
            self._add(int(c), features[torch.from_numpy(idx)])

    def _add(self, c: int, feats: Tensor) -> None:
        if self.buffers[c] is None:
            self.buffers[c] = feats.new_zeros(self.per_class, feats.shape[1])
        buf = self.buffers[c]
        m = feats.shape[0]
        t = self.seen[c] + np.arange(m)  # stream positions
        slots = np.where(t < self.per_class, t, -1)
        late = t >= self.per_class
        if late.any():
            r = self.rng.integers(0, t[late] + 1)
            slots[late] = np.where(r < self.per_class, r, -1)
        hit = np.nonzero(slots >= 0)[0]
        if hit.size:
            # a slot drawn twice in one batch keeps the later feature
            rev = hit[::-1]
            _, first = np.unique(slots[rev], return_index=True)
            take = rev[first]
            buf[torch.from_numpy(slots[take])] = feats[torch.from_numpy(take)]
        self.seen[c] += m
        self.filled[c] = min(self.per_class, self.seen[c])

    def sample(self) -> Tuple[Tensor, Tensor]:
        """The kept features ``M x C`` and their labels ``M``."""
        feats, labels = [], []
        for c, buf in enumerate(self.buffers):
            if buf is not None and self.filled[c]:
                feats.append(buf[:self.filled[c]])
                labels.append(torch.full((int(self.filled[c]), ), c,
                                         dtype=torch.long))
        if not feats:
            return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
        return torch.cat(feats), torch.cat(labels)

    def state(self) -> dict:
        """Picklable content (for collecting over ranks)."""
        feats, labels = self.sample()
        return dict(features=feats, labels=labels, seen=self.seen.copy())

    @classmethod
    def merge(cls, states: Sequence[dict], num_classes: int, per_class: int,
              seed: int = 0) -> Tuple[Tensor, Tensor]:
        """Combine reservoirs of disjoint streams (one per rank).

        Per class, ``per_class`` features are drawn without replacement,
        each weighted by ``seen / kept`` of its reservoir, so every feature
        of the union stream is (approximately) equally likely.
        """
        gen = torch.Generator().manual_seed(seed)
        feats, labels = [], []
        for c in range(num_classes):
            parts, weights = [], []
            for st in states:
                sel = st['labels'] == c
                kept = int(sel.sum())
                if kept:
                    parts.append(st['features'][sel])
                    weights.append(torch.full((kept, ),
                                              float(st['seen'][c]) / kept))
            if not parts:
                continue
            x, w = torch.cat(parts), torch.cat(weights)
            if x.shape[0] > per_class:
                x = x[torch.multinomial(w, per_class, replacement=False,
                                        generator=gen)]
            feats.append(x)
            labels.append(torch.full((x.shape[0], ), c, dtype=torch.long))
        if not feats:
            return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
        return torch.cat(feats), torch.cat(labels)

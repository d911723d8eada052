"""How compact and separated labelled features are: pure statistics
(:func:`compactness_stats`), used by
:class:`~sar_plugin.evaluation.FeatureCompactnessMetric`.

Definitions, for features ``x_i`` with labels ``y_i`` (classes with at least
one sample are *present*; every statistic of an absent class is ``nan``),
``mu_k`` the mean of class ``k``, ``n_k`` its number of samples and ``mu``
the mean of all samples (sample-weighted; the reservoir makes the sample
class-balanced, so this is close to the mean of the class means):

* ``intra[k]`` = mean over class ``k`` of ``||x_i - mu_k||^2`` (spread);
* ``nearest_mean_dist[k]`` = ``min_{j != k} ||mu_k - mu_j||`` over present
  classes (``nan`` with a single present class);
  ``mean_pairwise_mean_dist`` = mean of ``||mu_j - mu_k||`` over pairs of
  present classes;
* ``fisher`` = ``tr(S_B) / tr(S_W)`` with ``S_B = sum_k n_k (mu_k - mu)
  (mu_k - mu)^T`` and ``S_W = sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T``,
  i.e. ``sum_k n_k ||mu_k - mu||^2 / sum_k n_k intra[k]``;
  ``fisher_per_class[k]`` = ``||mu_k - mu||^2 / intra[k]``;
* ``silhouette``: for a sample ``i``, ``a`` = mean Euclidean distance to the
  other samples of its class, ``b`` = the smallest mean distance to the
  samples of another present class, ``s = (b - a) / max(a, b)`` (0 for a
  class with a single sample, as scikit-learn). Computed on a class-balanced
  subsample (at most ``silhouette_per_class`` per class, seeded) in chunks
  of ``chunk_size`` rows; ``silhouette`` is the mean over those samples,
  ``silhouette_per_class[k]`` the mean over class ``k``'s.
* per bucket (``buckets={name: [class indices]}``): the nan-aware mean of
  each per-class statistic over the bucket's classes.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .buckets import bucket_mean, nanmean

PER_CLASS_KEYS = ('intra', 'nearest_mean_dist', 'fisher_per_class',
                  'silhouette_per_class')


def silhouette_samples(features: Tensor, labels: Tensor, num_classes: int,
                       chunk_size: int = 1024) -> Tensor:
    """Silhouette of every sample (``M``), computed in row chunks."""
    x = features.double()
    y = labels.long()
    m = x.shape[0]
    onehot = F.one_hot(y, num_classes).double()  # M x K
    n = onehot.sum(0)  # K
    present = n > 0
    out = torch.zeros(m, dtype=torch.float64)
    if int(present.sum()) < 2:
        return out.fill_(float('nan'))
    for start in range(0, m, chunk_size):
        rows = slice(start, min(start + chunk_size, m))
        d = torch.cdist(x[rows], x)  # r x M
        sums = d @ onehot  # r x K: summed distance to each class
        own = y[rows]
        n_own = n[own]
        a = sums.gather(1, own[:, None])[:, 0] / (n_own - 1).clamp(min=1)
        mean_other = sums / n.clamp(min=1)
        mean_other[:, ~present] = float('inf')
        mean_other.scatter_(1, own[:, None], float('inf'))
        b = mean_other.min(1).values
        s = (b - a) / torch.maximum(a, b).clamp(min=1e-12)
        s[n_own <= 1] = 0.0
        out[rows] = s
    return out


def balanced_subsample(labels: Tensor, per_class: int,
                       seed: int = 0) -> Tensor:
    """Indices of at most ``per_class`` samples of every class (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for k in torch.unique(labels):
        idx = torch.nonzero(labels == k)[:, 0]
        if idx.numel() > per_class:
            idx = idx[torch.randperm(idx.numel(), generator=gen)[:per_class]]
        keep.append(idx)
    if not keep:
        return torch.zeros(0, dtype=torch.long)
    return torch.sort(torch.cat(keep)).values


def compactness_stats(features: Tensor,
                      labels: Tensor,
                      num_classes: int,
                      buckets: Optional[Dict[str, Sequence[int]]] = None,
                      silhouette_per_class: Optional[int] = 256,
                      chunk_size: int = 1024,
                      seed: int = 0) -> dict:
    """Compactness / separation statistics of labelled features.

    Args:
        features (Tensor): ``M x C``.
        labels (Tensor): ``M`` class indices; values outside
            ``[0, num_classes)`` (ignore) are dropped.
        num_classes (int): K.
        buckets (dict, optional): bucket name -> class indices.
        silhouette_per_class (int, optional): Class-balanced subsample size
            for the silhouette; ``None`` uses every sample.
        chunk_size (int): Rows per distance chunk of the silhouette.
        seed (int): Seed of the silhouette subsample.

    Returns:
        dict: ``num_samples`` (K ints), per-class ``intra``,
        ``nearest_mean_dist``, ``fisher_per_class``,
        ``silhouette_per_class`` (K-lists, ``nan`` for absent classes),
        scalars ``intra_mean`` (mean over present classes),
        ``nearest_mean_dist_mean``, ``mean_pairwise_mean_dist``, ``fisher``,
        ``silhouette``, and ``buckets`` -> {bucket: {statistic: value}} when
        buckets are given. See the module docstring for definitions.
    """
    x = features.detach().reshape(features.shape[0], -1).double().cpu()
    y = labels.detach().reshape(-1).long().cpu()
    valid = (y >= 0) & (y < num_classes)
    x, y = x[valid], y[valid]
    nan = float('nan')
    k = num_classes
    onehot = F.one_hot(y, k).double() if y.numel() else \
        torch.zeros(0, k, dtype=torch.float64)
    n = onehot.sum(0)
    present = n > 0
    means = (onehot.T @ x) / n.clamp(min=1)[:, None]  # K x C
    resid = x - means[y]
    sq = (resid**2).sum(1)
    intra = (onehot.T @ sq) / n.clamp(min=1)
    intra[~present] = nan
    mu = x.mean(0) if x.numel() else torch.zeros(x.shape[1],
                                                 dtype=torch.float64)
    between = ((means - mu)**2).sum(1)  # ||mu_k - mu||^2
    pres_idx = torch.nonzero(present)[:, 0]
    md = torch.cdist(means[pres_idx], means[pres_idx])
    nearest = torch.full((k, ), nan, dtype=torch.float64)
    pairwise = nan
    if pres_idx.numel() >= 2:
        md_off = md + torch.diag(torch.full((pres_idx.numel(), ),
                                            float('inf'),
                                            dtype=torch.float64))
        nearest[pres_idx] = md_off.min(1).values
        iu = torch.triu_indices(pres_idx.numel(), pres_idx.numel(), 1)
        pairwise = float(md[iu[0], iu[1]].mean())
    within_total = float(sq.sum())
    between_total = float((n * torch.nan_to_num(between)).sum())
    fisher = between_total / within_total if within_total > 0 else \
        (float('inf') if between_total > 0 else nan)
    fisher_pc = torch.where(present, between / intra,
                            torch.full_like(between, nan))

    if silhouette_per_class is not None:
        sub = balanced_subsample(y, silhouette_per_class, seed)
        xs, ys = x[sub], y[sub]
    else:
        xs, ys = x, y
    sil = silhouette_samples(xs, ys, k, chunk_size) if ys.numel() else \
        torch.zeros(0, dtype=torch.float64)
    sil_pc = torch.full((k, ), nan, dtype=torch.float64)
    for c in torch.unique(ys):
        sil_pc[c] = sil[ys == c].mean()

    out = dict(
        num_samples=[int(v) for v in n],
        intra=intra.tolist(),
        nearest_mean_dist=nearest.tolist(),
        fisher_per_class=fisher_pc.tolist(),
        silhouette_per_class=sil_pc.tolist(),
        intra_mean=nanmean(intra),
        nearest_mean_dist_mean=nanmean(nearest),
        mean_pairwise_mean_dist=pairwise,
        fisher=fisher,
        silhouette=nanmean(sil))
    if buckets is not None:
        out['buckets'] = {
            name: {key: bucket_mean(out[key], {name: members})[name]
                   for key in PER_CLASS_KEYS}
            for name, members in buckets.items()
        }
    return out

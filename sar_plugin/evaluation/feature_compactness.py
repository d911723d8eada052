"""How compact and separated the pre-classifier features of each class are.

Pure functions (:func:`compactness_stats`), a bounded-memory class-balanced
sample of a feature stream (:class:`ClassBalancedReservoir`) and an MMEngine
metric on top (:class:`FeatureCompactnessMetric`).

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
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS
from torch import Tensor

from .buckets import bucket_indices, bucket_mean, frequency_source
from .records import RecordWriter, json_float

PER_CLASS_KEYS = ('intra', 'nearest_mean_dist', 'fisher_per_class',
                  'silhouette_per_class')


def _nanmean(t: Tensor) -> float:
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else float('nan')


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
    with np.errstate(divide='ignore', invalid='ignore'):
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
        intra_mean=_nanmean(intra),
        nearest_mean_dist_mean=_nanmean(nearest),
        mean_pairwise_mean_dist=pairwise,
        fisher=fisher,
        silhouette=_nanmean(sil) if sil.numel() else nan)
    if buckets is not None:
        out['buckets'] = {
            name: {key: bucket_mean(out[key], {name: members})[name]
                   for key in PER_CLASS_KEYS}
            for name, members in buckets.items()
        }
    return out


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


def _tensor(value) -> Optional[Tensor]:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get('data')
    elif hasattr(value, 'data') and not isinstance(value, Tensor):
        value = value.data
    return value


@METRICS.register_module()
class FeatureCompactnessMetric(BaseMetric):
    """Compactness of the pre-classifier features on the evaluation set.

    Expected input: every data sample (dict, as the model's ``predict``
    output after ``to_dict()``) carries its pre-classifier feature as
    ``seg_features`` (or ``anchor_feat``; first found in ``feature_keys``),
    a ``C x h x w`` tensor or a ``PixelData``/``{'data': tensor}`` holding
    one, covering the same image area as ``gt_sem_seg`` (no padding). The
    labels are ``gt_sem_seg`` nearest-resized to ``h x w`` (or a
    ``seg_features_label`` / ``{'data': ...}`` ``h x w`` field already at
    that size, when present). Pixels labelled ``ignore_index`` are dropped.
    For classification the feature is the image's ``C`` vector and the
    label its ``gt_label``.
    Features are fed to a :class:`ClassBalancedReservoir` (``per_class``
    per class; one per rank, merged on rank 0), then
    :func:`compactness_stats` computes the statistics.

    Returned keys (prefixed ``feat/`` by default): ``fisher``,
    ``silhouette``, ``intra_mean``, ``nearest_mean_dist_mean``,
    ``mean_pairwise_mean_dist``; per class ``silhouette.<class>``,
    ``intra.<class>``, ``fisher.<class>``, ``nearest_mean_dist.<class>``;
    with ``class_frequency`` per bucket ``silhouette.<bucket>``,
    ``intra.<bucket>``, ``fisher.<bucket>``,
    ``nearest_mean_dist.<bucket>``.

    The features come from the model: add
    :class:`~sar_plugin.engine.FeatureExportHook` to ``custom_hooks`` (it
    attaches the classifier's input to every predicted data sample during
    validation and test). Samples without any feature field are skipped
    (with one warning).

    At every evaluation a record is written by a
    :class:`~sar_plugin.evaluation.records.RecordWriter` to
    ``<log_dir>/feature_eval/iter_<N>.json`` (``classes``, ``num_samples``,
    the per-class lists ``intra``, ``nearest_mean_dist``, ``fisher``,
    ``silhouette``, the overall values under ``summary``, ``buckets`` and
    ``bucket_stats``) with ``iter_<N>.npz`` holding at most
    ``save_per_class`` sampled features per class (``features`` float32
    ``M x C``, ``labels``) for 2-D projections in reports.

    Args:
        per_class (int): Reservoir size per class. Defaults to 256.
        silhouette_per_class (int, optional): Silhouette subsample per
            class; defaults to ``per_class``.
        ignore_index (int): Defaults to 255.
        class_frequency, bucket_rule, bucket_cfg: As
            :class:`LongTailIoUMetric`.
        feature_keys (Sequence[str]): Fields searched for the feature.
        seed (int): Seed of the reservoir and the silhouette subsample.
        per_class_keys (bool): Return the per-class entries. Default True.
        save_per_class (int): Features per class kept in the ``.npz``
            record (0: no ``.npz``). Defaults to 64.
        save_max_samples (int): At most this many features in the ``.npz``
            (``save_per_class`` shrinks for many classes: 1000 ImageNet
            classes of 2048 channels keep 4 each). Defaults to 4096.
        save_dir (str, optional): Where records go instead of
            ``<log_dir>/feature_eval``.
        save_records (bool): Write the records at all. Defaults to True.
    """
    default_prefix = 'feat'

    def __init__(self,
                 per_class: int = 256,
                 silhouette_per_class: Optional[int] = None,
                 ignore_index: int = 255,
                 class_frequency: Optional[Union[str, dict, Sequence]] = None,
                 bucket_rule: str = 'cumulative',
                 bucket_cfg: Optional[dict] = None,
                 feature_keys: Sequence[str] = ('seg_features',
                                                'anchor_feat'),
                 seed: int = 0,
                 per_class_keys: bool = True,
                 save_per_class: int = 64,
                 save_max_samples: int = 4096,
                 save_dir: Optional[str] = None,
                 save_records: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.per_class = per_class
        self.silhouette_per_class = silhouette_per_class or per_class
        self.ignore_index = ignore_index
        self.class_frequency = class_frequency
        self.bucket_rule = bucket_rule
        self.bucket_cfg = dict(bucket_cfg or {})
        self.feature_keys = tuple(feature_keys)
        self.seed = seed
        self.per_class_keys = per_class_keys
        self.save_per_class = save_per_class
        self.save_max_samples = save_max_samples
        self.save_records = save_records
        self.writer = RecordWriter('feature_eval', save_dir,
                                   type(self).__name__)
        self._reservoir: Optional[ClassBalancedReservoir] = None
        self._warned = False

    def _get_reservoir(self) -> ClassBalancedReservoir:
        if self._reservoir is None:
            from mmengine.dist import get_rank
            self._reservoir = ClassBalancedReservoir(
                len(self.dataset_meta['classes']), self.per_class,
                self.seed + get_rank())
        return self._reservoir

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        reservoir = self._get_reservoir()
        for sample in data_samples:
            feat = None
            for key in self.feature_keys:
                feat = _tensor(sample.get(key))
                if feat is not None:
                    break
            if feat is None:
                if not self._warned:
                    print_log(
                        'FeatureCompactnessMetric: data samples carry none of '
                        f'{self.feature_keys}; skipped', logger='current',
                        level=30)
                    self._warned = True
                continue
            if feat.dim() == 1:  # an image's pooled feature
                label = _tensor(sample.get('gt_label'))
                reservoir.update(feat[None], torch.as_tensor(label)[:1])
                continue
            if feat.dim() == 4 and feat.shape[0] == 1:
                feat = feat[0]
            label = _tensor(sample.get('seg_features_label'))
            if label is None:
                label = _tensor(sample['gt_sem_seg'])
            label = label.reshape(-1, *label.shape[-2:])[:1].float()
            if tuple(label.shape[-2:]) != tuple(feat.shape[-2:]):
                label = F.interpolate(label[None], size=feat.shape[-2:],
                                      mode='nearest')[0]
            reservoir.update(feat, label[0].long())

    def evaluate(self, size: int) -> dict:
        if self._reservoir is not None:
            self.results.append(self._reservoir.state())
        self._reservoir = None
        return super().evaluate(size)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        classes = list(self.dataset_meta['classes'])
        k = len(classes)
        feats, labels = ClassBalancedReservoir.merge(results, k,
                                                     self.per_class,
                                                     self.seed)
        buckets = None
        source = frequency_source(self.class_frequency, self.dataset_meta)
        if source is not None:
            buckets = bucket_indices(source, classes, self.bucket_rule,
                                     **self.bucket_cfg)
        if feats.numel() == 0:
            return {}
        stats = compactness_stats(feats, labels, k, buckets,
                                  self.silhouette_per_class, seed=self.seed)
        metrics = {key: stats[key] for key in (
            'fisher', 'silhouette', 'intra_mean', 'nearest_mean_dist_mean',
            'mean_pairwise_mean_dist')}
        short = dict(intra='intra', nearest_mean_dist='nearest_mean_dist',
                     fisher_per_class='fisher',
                     silhouette_per_class='silhouette')
        if self.per_class_keys:
            for key, name in short.items():
                for cls, value in zip(classes, stats[key]):
                    metrics[f'{name}.{cls}'] = value
        for bucket, values in stats.get('buckets', {}).items():
            for key, name in short.items():
                metrics[f'{name}.{bucket}'] = values[key]
        if self.save_records:
            self._write_record(classes, stats, buckets, feats, labels)
        return metrics

    def _write_record(self, classes: List[str], stats: dict,
                      buckets: Optional[Dict[str, List[int]]], feats: Tensor,
                      labels: Tensor) -> None:
        """The per-class statistics as JSON and a feature sample as npz."""
        def floats(values) -> list:
            return [json_float(v) for v in values]

        short = dict(intra='intra', nearest_mean_dist='nearest_mean_dist',
                     fisher_per_class='fisher',
                     silhouette_per_class='silhouette')
        record = dict(
            task='features',
            classes=classes,
            num_samples=[int(n) for n in stats['num_samples']],
            summary={key: json_float(stats[key]) for key in (
                'fisher', 'silhouette', 'intra_mean',
                'nearest_mean_dist_mean', 'mean_pairwise_mean_dist')},
            **{name: floats(stats[key]) for key, name in short.items()},
            buckets=None if buckets is None else {
                k: [classes[i] for i in v] for k, v in buckets.items()},
            bucket_stats={
                bucket: {name: json_float(values[key])
                         for key, name in short.items()}
                for bucket, values in stats.get('buckets', {}).items()
            } or None)
        arrays = None
        per_class = min(self.save_per_class,
                        self.save_max_samples // max(len(classes), 1))
        if per_class > 0:
            keep = balanced_subsample(labels, per_class, seed=self.seed)
            arrays = dict(features=feats[keep].float().numpy(),
                          labels=labels[keep].numpy().astype(np.int32))
        self.writer.write(record, arrays)

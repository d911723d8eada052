"""Feature compactness of the evaluated set as an MMEngine metric: the
pre-classifier features go through a :class:`ClassBalancedReservoir`, then
:func:`~sar_plugin.evaluation.compactness.compactness_stats`."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS
from torch import Tensor

from .compactness import balanced_subsample, compactness_stats
from .longtail_base import LongTailMetricMixin, keyed
from .records import FEATURE_LISTS, FEATURE_SUBDIR, FeatureRecord
from .reservoir import ClassBalancedReservoir

#: the overall statistics, returned and recorded
SUMMARY_KEYS = ('fisher', 'silhouette', 'intra_mean',
                'nearest_mean_dist_mean', 'mean_pairwise_mean_dist')
#: :func:`compactness_stats` per-class key -> short name (of the returned
#: keys and the record's lists)
SHORT_NAMES = OrderedDict(zip(('intra', 'nearest_mean_dist',
                               'fisher_per_class', 'silhouette_per_class'),
                              FEATURE_LISTS))


def _tensor(value) -> Optional[Tensor]:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get('data')
    elif hasattr(value, 'data') and not isinstance(value, Tensor):
        value = value.data
    return value


@METRICS.register_module()
class FeatureCompactnessMetric(LongTailMetricMixin, BaseMetric):
    """Compactness of the pre-classifier features on the evaluation set.

    Expected input: every data sample (dict, as the model's ``predict``
    output after ``to_dict()``) carries its pre-classifier feature as
    ``feature_field``, a ``C x h x w`` tensor or a ``PixelData``/
    ``{'data': tensor}`` holding one, covering the same image area as
    ``gt_sem_seg`` (no padding). The labels are ``gt_sem_seg``
    nearest-resized to ``h x w``; pixels labelled ``ignore_index`` (or
    outside ``[0, K)``) are dropped. For classification the feature is the
    image's ``C`` vector and the label its ``gt_label``.
    Features are fed to a :class:`ClassBalancedReservoir` (``per_class``
    per class; one per rank, merged on rank 0), then
    :func:`~sar_plugin.evaluation.compactness.compactness_stats` computes
    the statistics.

    Returned keys (prefixed ``feat/`` by default): ``fisher``,
    ``silhouette``, ``intra_mean``, ``nearest_mean_dist_mean``,
    ``mean_pairwise_mean_dist``; per class (see ``per_class_keys``)
    ``intra.<class>``, ``nearest_mean_dist.<class>``, ``fisher.<class>``,
    ``silhouette.<class>``; with a class frequency the same per bucket.

    The features come from the model: add
    :class:`~sar_plugin.engine.LongTailEvalHook` to ``custom_hooks`` (it
    attaches the classifier's input to every predicted data sample during
    validation and test). Samples without the feature are skipped (with one
    warning).

    At every evaluation a
    :class:`~sar_plugin.evaluation.records.FeatureRecord` is written to
    ``<log_dir>/feature_eval/iter_<N>.json`` with ``iter_<N>.npz`` holding
    at most ``save_per_class`` sampled features per class (``features``
    float32 ``M x C``, ``labels``) for 2-D projections in reports.

    Args:
        per_class (int): Reservoir size per class. Defaults to 256.
        silhouette_per_class (int, optional): Silhouette subsample per
            class; defaults to ``per_class``.
        ignore_index (int): Defaults to 255.
        feature_field (str): The data-sample field holding the feature
            (:class:`~sar_plugin.engine.LongTailEvalHook`'s ``field``).
            Defaults to ``'seg_features'``.
        seed (int): Seed of the reservoir and the silhouette subsample.
        save_per_class (int): Features per class kept in the ``.npz``
            record (0: no ``.npz``). Defaults to 64.
        save_max_samples (int): At most this many features in the ``.npz``
            (``save_per_class`` shrinks for many classes: 1000 ImageNet
            classes of 2048 channels keep 4 each). Defaults to 4096.
        **kwargs: The long-tail arguments of
            :class:`~sar_plugin.evaluation.longtail_base.LongTailMetricMixin`,
            ``collect_device`` and ``prefix``.
    """
    default_prefix = 'feat'
    record_subdir = FEATURE_SUBDIR

    def __init__(self,
                 per_class: int = 256,
                 silhouette_per_class: Optional[int] = None,
                 ignore_index: int = 255,
                 feature_field: str = 'seg_features',
                 seed: int = 0,
                 save_per_class: int = 64,
                 save_max_samples: int = 4096,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.per_class = per_class
        self.silhouette_per_class = silhouette_per_class or per_class
        self.ignore_index = ignore_index
        self.feature_field = feature_field
        self.seed = seed
        self.save_per_class = save_per_class
        self.save_max_samples = save_max_samples
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
            feat = _tensor(sample.get(self.feature_field))
            if feat is None:
                if not self._warned:
                    print_log(
                        'FeatureCompactnessMetric: data samples carry no '
                        f'{self.feature_field!r}; skipped', logger='current',
                        level=30)
                    self._warned = True
                continue
            if feat.dim() == 1:  # an image's pooled feature
                label = _tensor(sample.get('gt_label'))
                reservoir.update(feat[None], torch.as_tensor(label)[:1])
                continue
            if feat.dim() == 4 and feat.shape[0] == 1:
                feat = feat[0]
            label = _tensor(sample['gt_sem_seg'])
            label = label.reshape(-1, *label.shape[-2:])[:1].float()
            if tuple(label.shape[-2:]) != tuple(feat.shape[-2:]):
                label = F.interpolate(label[None], size=feat.shape[-2:],
                                      mode='nearest')[0]
            label = label[0].long()
            reservoir.update(feat, label.masked_fill(
                label == self.ignore_index, -1))

    def evaluate(self, size: int) -> dict:
        if self._reservoir is not None:
            self.results.append(self._reservoir.state())
        self._reservoir = None
        return super().evaluate(size)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        classes = list(self.dataset_meta['classes'])
        feats, labels = ClassBalancedReservoir.merge(
            results, len(classes), self.per_class, self.seed)
        if feats.numel() == 0:
            return {}
        buckets = self.class_buckets(classes)
        stats = compactness_stats(feats, labels, len(classes),
                                  buckets and buckets.indices,
                                  self.silhouette_per_class, seed=self.seed)
        bucket_stats = OrderedDict(
            (bucket, OrderedDict((name, values[key])
                                 for key, name in SHORT_NAMES.items()))
            for bucket, values in stats.get('buckets', {}).items())
        metrics = {key: stats[key] for key in SUMMARY_KEYS}
        for key, name in SHORT_NAMES.items():
            metrics.update(self.per_class_entries(name, classes, stats[key]))
        for bucket, values in bucket_stats.items():
            for name, value in values.items():
                metrics.update(keyed(name, [bucket], [value]))
        if self.save_records:
            self.writer.write(FeatureRecord(
                classes=classes,
                num_samples=[int(n) for n in stats['num_samples']],
                summary={key: stats[key] for key in SUMMARY_KEYS},
                per_class={name: stats[key]
                           for key, name in SHORT_NAMES.items()},
                buckets=buckets and buckets.names,
                bucket_stats=bucket_stats),
                self._sample_arrays(classes, feats, labels))
        return metrics

    def _sample_arrays(self, classes: List[str], feats: Tensor,
                       labels: Tensor) -> Optional[Dict[str, np.ndarray]]:
        """At most ``save_per_class`` features per class for the ``.npz``."""
        per_class = min(self.save_per_class,
                        self.save_max_samples // max(len(classes), 1))
        if per_class <= 0:
            return None
        keep = balanced_subsample(labels, per_class, seed=self.seed)
        return dict(features=feats[keep].float().numpy(),
                    labels=labels[keep].numpy().astype(np.int32))

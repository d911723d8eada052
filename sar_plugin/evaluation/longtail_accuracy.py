"""Classification accuracy for long-tailed data: top-k, per class and per
many/medium/few bucket."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from .buckets import NO_BUCKETS, evaluate_buckets
from .records import RecordWriter, json_float


def _field(sample, key):
    value = sample.get(key) if isinstance(sample, dict) else \
        getattr(sample, key, None)
    return value


@METRICS.register_module()
class LongTailAccuracy(BaseMetric):
    """Top-k accuracy, per-class accuracy and accuracy per frequency bucket.

    Every data sample (the model's ``predict`` output) carries
    ``pred_score`` (``K`` scores) and ``gt_label``. Returned (percent):

    * ``top1``, ``top5`` (each ``k`` of ``topk`` not larger than ``K``);
    * ``mAcc``: mean of the per-class accuracies (equal to ``top1`` on a
      balanced test set, the usual long-tail protocol);
    * ``Acc.<class>`` when ``per_class_keys`` (default: when ``K <= 100``);
    * ``mAcc.many`` / ``mAcc.medium`` / ``mAcc.few`` (the literature's
      "many-shot" ... accuracies: mean per-class top-1 accuracy over the
      bucket's classes) when training counts are known: ``class_frequency``
      or the data set's ``train_class_counts`` metainfo (the CIFAR-LT and
      image-list data sets provide it). Rule ``'counts'`` by default:
      many > 100, few < 20 training samples.

    At every evaluation the per-class table is written as JSON (keys as
    :class:`LongTailIoUMetric`'s, with ``task='classification'``,
    ``score='Acc'``, ``train_counts`` and ``summary`` ``{top1, top5,
    mAcc}``) to ``<log_dir>/longtail_eval/`` for
    ``tools/longtail_report.py``.

    Args:
        topk (Sequence[int]): Default ``(1, 5)``.
        class_frequency: Training counts (see :class:`LongTailIoUMetric`).
        bucket_rule (str): Default ``'counts'``.
        bucket_cfg (dict, optional): ``many_thr``, ``few_thr``...
        per_class_keys (bool, optional): Return ``Acc.<class>``.
        save_dir (str, optional): Record folder instead of the run's.
        save_json (bool): Write the records. Default True.
    """
    default_prefix = None

    def __init__(self,
                 topk: Sequence[int] = (1, 5),
                 class_frequency: Optional[Union[str, dict, Sequence]] = None,
                 bucket_rule: str = 'counts',
                 bucket_cfg: Optional[dict] = None,
                 per_class_keys: Optional[bool] = None,
                 save_dir: Optional[str] = None,
                 save_json: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(sorted(set(int(k) for k in topk)))
        if not self.topk or self.topk[0] < 1:
            raise ValueError(f'topk must be positive integers, got {topk}')
        self.class_frequency = class_frequency
        self.bucket_rule = bucket_rule
        self.bucket_cfg = dict(bucket_cfg or {})
        self.per_class_keys = per_class_keys
        self.save_json = save_json
        self.writer = RecordWriter('longtail_eval', save_dir,
                                   type(self).__name__)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = _field(sample, 'pred_score')
            label = _field(sample, 'gt_label')
            if score is None or label is None:
                raise KeyError('LongTailAccuracy needs pred_score and '
                               'gt_label in every data sample')
            score = torch.as_tensor(score).reshape(-1)
            k = min(max(self.topk), score.numel())
            self.results.append((int(torch.as_tensor(label).reshape(-1)[0]),
                                 score.topk(k).indices.cpu().numpy()))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        classes = [str(c) for c in self.dataset_meta['classes']]
        k = len(classes)
        labels = np.array([r[0] for r in results], np.int64)
        top = np.stack([r[1] for r in results]) if results else \
            np.zeros((0, 1), np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f'gt_label out of range [0, {k}): '
                             f'{labels.min()}..{labels.max()}')
        metrics: Dict[str, float] = OrderedDict()
        for t in self.topk:
            if t <= k:
                hit = (top[:, :t] == labels[:, None]).any(1)
                metrics[f'top{t}'] = float(np.round(hit.mean() * 100, 2)) \
                    if labels.size else float('nan')
        correct = top[:, 0] == labels
        counts = np.bincount(labels, minlength=k)
        with np.errstate(divide='ignore', invalid='ignore'):
            acc = np.bincount(labels, weights=correct, minlength=k) / counts
        acc[counts == 0] = np.nan
        metrics['mAcc'] = float(np.round(np.nanmean(acc) * 100, 2)) \
            if np.isfinite(acc).any() else float('nan')
        per_class = self.per_class_keys if self.per_class_keys is not None \
            else k <= 100
        if per_class:
            for name, value in zip(classes, acc):
                metrics[f'Acc.{name}'] = float(np.round(value * 100, 2))

        bucketed = evaluate_buckets(self.class_frequency, self.dataset_meta,
                                    classes, acc, self.bucket_rule,
                                    self.bucket_cfg)
        if bucketed is not None:
            for name, value in bucketed['scores'].items():
                metrics[f'mAcc.{name}'] = value

        if self.save_json:
            self.writer.write(OrderedDict(
                task='classification',
                score='Acc',
                classes=classes,
                Acc=[json_float(np.round(v * 100, 2)) for v in acc],
                counts=[int(c) for c in counts],
                train_counts=bucketed and bucketed['counts'],
                frequency=bucketed and bucketed['frequency'],
                **(bucketed['record'] if bucketed else NO_BUCKETS),
                summary=OrderedDict((key, json_float(metrics[key]))
                                    for key in [f'top{t}' for t in self.topk
                                                if t <= k] + ['mAcc'])))
        return dict(metrics)


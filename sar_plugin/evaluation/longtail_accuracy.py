"""Classification accuracy for long-tailed data: top-k, per class and per
many/medium/few bucket."""
from collections import OrderedDict
from typing import Dict, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from .buckets import percent
from .longtail_base import LongTailMetricMixin
from .records import ScoreRecord


def _field(sample, key):
    value = sample.get(key) if isinstance(sample, dict) else \
        getattr(sample, key, None)
    return value


@METRICS.register_module()
class LongTailAccuracy(LongTailMetricMixin, BaseMetric):
    """Top-k accuracy, per-class accuracy and accuracy per frequency bucket.

    Every data sample (the model's ``predict`` output) carries
    ``pred_score`` (``K`` scores) and ``gt_label``. Returned (percent):

    * ``top1``, ``top5`` (each ``k`` of ``topk`` not larger than ``K``);
    * ``mAcc``: mean of the per-class accuracies (equal to ``top1`` on a
      balanced test set, the usual long-tail protocol);
    * ``Acc.<class>`` (see ``per_class_keys``);
    * ``mAcc.many`` / ``mAcc.medium`` / ``mAcc.few`` (the literature's
      "many-shot" ... accuracies: mean per-class top-1 accuracy over the
      bucket's classes) when training counts are known: ``class_frequency``
      or the data set's ``train_class_counts`` metainfo (the CIFAR-LT and
      image-list data sets provide it). Rule ``'counts'`` by default:
      many > 100, few < 20 training samples.

    At every evaluation a :class:`~sar_plugin.evaluation.records.ScoreRecord`
    (``task='classification'``, ``score='Acc'``, ``train_counts``,
    ``summary`` ``{top1, top5, mAcc}``) is written to
    ``<log_dir>/longtail_eval/`` for ``tools/longtail_report.py``.

    Args:
        topk (Sequence[int]): Default ``(1, 5)``.
        **kwargs: The long-tail arguments of
            :class:`~sar_plugin.evaluation.longtail_base.LongTailMetricMixin`
            (``bucket_rule`` defaults to ``'counts'``), ``collect_device``
            and ``prefix``.
    """
    default_prefix = None
    default_bucket_rule = 'counts'

    def __init__(self, topk: Sequence[int] = (1, 5), **kwargs) -> None:
        super().__init__(**kwargs)
        self.topk = tuple(sorted(set(int(k) for k in topk)))
        if not self.topk or self.topk[0] < 1:
            raise ValueError(f'topk must be positive integers, got {topk}')

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
                metrics[f'top{t}'] = percent(hit.mean()) \
                    if labels.size else float('nan')
        correct = top[:, 0] == labels
        counts = np.bincount(labels, minlength=k)
        with np.errstate(divide='ignore', invalid='ignore'):
            acc = np.bincount(labels, weights=correct, minlength=k) / counts
        acc[counts == 0] = np.nan
        metrics['mAcc'] = percent(np.nanmean(acc)) \
            if np.isfinite(acc).any() else float('nan')
        scores = [percent(v) for v in acc]
        metrics.update(self.per_class_entries('Acc', classes, scores))
        bucket_fields = self.bucket_results('mAcc', classes, acc, metrics)
        self.save_record(ScoreRecord(
            task='classification', score='Acc', classes=classes,
            scores=OrderedDict(Acc=scores), counts=[int(c) for c in counts],
            summary=OrderedDict((key, metrics[key])
                                for key in [f'top{t}' for t in self.topk
                                            if t <= k] + ['mAcc']),
            **bucket_fields))
        return dict(metrics)

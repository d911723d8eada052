"""IoU metric that also reports every class and frequency buckets, so runs
can be compared per class and on the long tail."""
import logging
from collections import OrderedDict
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from ..utils.labels import LabelRangeCheck
from .buckets import percent
from .longtail_base import LongTailMetricMixin
from .records import ScoreRecord


@METRICS.register_module()
class LongTailIoUMetric(LongTailMetricMixin, IoUMetric):
    """:class:`~mmseg.evaluation.IoUMetric` plus per-class and bucket entries.

    Everything ``IoUMetric`` returns (``aAcc``, ``mIoU``, ``mAcc``... and the
    per-class table in the log) is kept; in addition ``IoU.<class>`` and
    ``Acc.<class>`` (percent; left out for a class absent from both the
    labels and the predictions) are returned, so they reach the scalar logs
    of every evaluation and can be compared between runs afterwards, and
    with a class frequency ``mIoU.<bucket>`` (``mIoU.head``, ``mIoU.body``,
    ``mIoU.tail``; percent, nan-aware mean like ``mIoU``, left out for a
    bucket without any evaluated class; the record holds ``null``).

    At every evaluation a :class:`~sar_plugin.evaluation.records.ScoreRecord`
    (``task='segmentation'``, ``score='IoU'``, per-class ``IoU`` and
    ``Acc``, ``counts`` = ground-truth pixels per class over the evaluated
    set, ``summary`` ``{mIoU, mAcc, aAcc}``) is written to
    ``<log_dir>/longtail_eval/iter_<N>.json`` and ``latest.json``.

    Distributed evaluation is MMEngine's: per-rank areas are collected and
    summed on rank 0 before :meth:`compute_metrics`, which only rank 0 runs,
    so only rank 0 writes.

    Args:
        strict_labels (bool): Raise, naming the image and the values, on a
            label outside ``[0, K)`` that is not ``ignore_index`` (MMSeg's
            ``IoUMetric`` would count the predictions there as false
            positives). False: exclude such pixels from labels and
            predictions and warn once per evaluation with their count.
        **kwargs: The long-tail arguments of
            :class:`~sar_plugin.evaluation.longtail_base.LongTailMetricMixin`
            (``class_frequency``, ``bucket_rule``, ``bucket_cfg``,
            ``per_class_keys``, ``save_records``, ``record_dir``) and
            :class:`~mmseg.evaluation.IoUMetric` arguments.
    """

    def __init__(self, strict_labels: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label_check = LabelRangeCheck(strict_labels, self.ignore_index,
                                           type(self).__name__)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Check (and with ``strict_labels=False`` mask) the labels, then
        MMSeg's ``IoUMetric.process``."""
        num_classes = len(self.dataset_meta['classes'])
        checked = []
        for sample in data_samples:
            if 'gt_sem_seg' in sample:
                label = sample['gt_sem_seg']['data']
                fixed = self.label_check(
                    label, num_classes,
                    sample.get('img_path', 'an image without img_path'))
                if fixed is not label:
                    sample = dict(sample, gt_sem_seg=dict(
                        sample['gt_sem_seg'], data=fixed))
            checked.append(sample)
        super().process(data_batch, checked)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        message = self.label_check.flush()
        if message:
            print_log(message, logger='current', level=logging.WARNING)
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        classes = list(self.dataset_meta['classes'])
        fractions = self.per_class_metrics(results)
        scores = OrderedDict((key, [percent(v) for v in values])
                             for key, values in fractions.items())
        for key, values in scores.items():
            metrics.update(self.per_class_entries(key, classes, values))
        bucket_fields = self.bucket_results('mIoU', classes, fractions['IoU'],
                                            metrics)
        label_area = sum(r[3] for r in results)
        self.save_record(ScoreRecord(
            task='segmentation', score='IoU', classes=classes, scores=scores,
            counts=[int(v) for v in label_area.cpu().numpy().round()],
            summary=OrderedDict((k, metrics[k]) for k in ('mIoU', 'mAcc',
                                                          'aAcc')
                                if k in metrics), **bucket_fields))
        return metrics

    @staticmethod
    def per_class_metrics(results: list) -> 'OrderedDict[str, np.ndarray]':
        """Per-class IoU and accuracy (fractions) from the per-image areas."""
        areas: List[torch.Tensor] = [
            sum(r[i] for r in results) for i in range(4)
        ]
        intersect, union, _, label = (a.double().cpu().numpy() for a in areas)
        with np.errstate(divide='ignore', invalid='ignore'):
            iou = intersect / union
            acc = intersect / label
        return OrderedDict(IoU=iou, Acc=acc)

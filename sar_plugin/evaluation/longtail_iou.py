"""IoU metric that also reports every class and frequency buckets, so runs
can be compared per class and on the long tail."""
import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from .buckets import NO_BUCKETS, evaluate_buckets, resolve_frequency
from ..utils.labels import LabelRangeCheck
from .records import RecordWriter, json_float


@METRICS.register_module()
class LongTailIoUMetric(IoUMetric):
    """:class:`~mmseg.evaluation.IoUMetric` plus per-class and bucket entries.

    Everything ``IoUMetric`` returns (``aAcc``, ``mIoU``, ``mAcc``... and the
    per-class table in the log) is kept; in addition ``IoU.<class>`` and
    ``Acc.<class>`` (percent; ``nan`` for a class absent from both the
    labels and the predictions) are returned, so they reach the scalar logs
    of every evaluation and can be compared between runs afterwards.

    With a class frequency (``class_frequency``, or else the data set's
    ``train_class_counts`` metainfo when it has one, as the embedded
    synthetic set and the CIFAR-LT sets do) the classes are split into
    buckets by
    :func:`sar_plugin.evaluation.buckets.make_buckets` (``bucket_rule``,
    ``bucket_cfg``) and ``mIoU.<bucket>`` (``mIoU.head``, ``mIoU.body``,
    ``mIoU.tail``; percent, nan-aware mean like ``mIoU``, ``nan`` for a
    bucket without any evaluated class) is returned too.

    At every evaluation the per-class table is written as JSON by a
    :class:`~sar_plugin.evaluation.records.RecordWriter` to
    ``<log_dir>/longtail_eval/iter_<N>.json`` and ``latest.json``. Keys:
    ``task`` (``'segmentation'``), ``score`` (``'IoU'``, the per-class
    score reports plot), ``classes``, ``IoU``, ``Acc`` (percent, ``null``
    for nan), ``counts`` (ground-truth pixels per class over the evaluated
    set), ``frequency`` (train frequency, else ``null``), ``buckets``
    (bucket -> class names, or ``null``), ``bucket_rule`` (a sentence),
    ``bucket_scores`` (bucket ->
    mIoU), ``summary`` (``mIoU``, ``mAcc``, ``aAcc``), ``iter``.

    Distributed evaluation is MMEngine's: per-rank areas are collected and
    summed on rank 0 before :meth:`compute_metrics`, which only rank 0 runs,
    so only rank 0 writes.

    Args:
        class_frequency (str | dict | list, optional): Path of the JSON of
            ``tools/analysis/class_frequency.py``, such a record, a
            ``{class: count}`` mapping or a list of counts/frequencies in
            class order. ``None``: the data set's ``train_class_counts``
            metainfo if any, else no buckets.
        bucket_rule (str): ``'cumulative'`` (default), ``'thirds'`` or
            ``'counts'``.
        bucket_cfg (dict, optional): Keyword arguments of the rule
            (``head_share``, ``tail_share``, ``many_thr``, ``few_thr``).
        save_dir (str, optional): Where the JSON tables go. ``None``: the
            run's log dir + ``/longtail_eval`` (skipped with a warning when
            there is no run).
        save_json (bool): Write the JSON tables at all. Defaults to True.
        strict_labels (bool): Raise, naming the image and the values, on a
            label outside ``[0, K)`` that is not ``ignore_index`` (MMSeg's
            ``IoUMetric`` would count the predictions there as false
            positives). False: exclude such pixels from labels and
            predictions and warn once per evaluation with their count.
        **kwargs: :class:`~mmseg.evaluation.IoUMetric` arguments.
    """

    def __init__(self,
                 class_frequency: Optional[Union[str, dict, Sequence]] = None,
                 bucket_rule: str = 'cumulative',
                 bucket_cfg: Optional[dict] = None,
                 save_dir: Optional[str] = None,
                 save_json: bool = True,
                 strict_labels: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.label_check = LabelRangeCheck(strict_labels, self.ignore_index,
                                           type(self).__name__)
        self.class_frequency = class_frequency
        self.bucket_rule = bucket_rule
        self.bucket_cfg = dict(bucket_cfg or {})
        self.save_json = save_json
        self.writer = RecordWriter('longtail_eval', save_dir,
                                   type(self).__name__)
        if class_frequency is not None:  # fail early on a bad input
            resolve_frequency(class_frequency)

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
        per_class = self.per_class_metrics(results)
        classes = list(self.dataset_meta['classes'])
        for key, values in per_class.items():
            for name, value in zip(classes, values):
                metrics[f'{key}.{name}'] = float(np.round(value * 100, 2))

        bucketed = evaluate_buckets(self.class_frequency, self.dataset_meta,
                                    classes, per_class['IoU'],
                                    self.bucket_rule, self.bucket_cfg)
        if bucketed is not None:
            for key, value in bucketed['scores'].items():
                metrics[f'mIoU.{key}'] = value

        if self.save_json:
            label_area = sum(r[3] for r in results)
            self.writer.write(OrderedDict(
                task='segmentation',
                score='IoU',
                classes=classes,
                IoU=[json_float(metrics[f'IoU.{c}']) for c in classes],
                Acc=[json_float(metrics[f'Acc.{c}']) for c in classes],
                counts=[int(v) for v in label_area.cpu().numpy().round()],
                frequency=bucketed and bucketed['frequency'],
                **(bucketed['record'] if bucketed else NO_BUCKETS),
                summary=OrderedDict((k, json_float(metrics[k]))
                                    for k in ('mIoU', 'mAcc', 'aAcc')
                                    if k in metrics)))
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

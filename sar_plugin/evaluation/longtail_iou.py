"""IoU metric that also reports every class, so runs can be compared per class."""
from collections import OrderedDict
from typing import Dict, List

import numpy as np
import torch
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class LongTailIoUMetric(IoUMetric):
    """:class:`~mmseg.evaluation.IoUMetric` plus per-class entries.

    Everything ``IoUMetric`` returns (``aAcc``, ``mIoU``, ``mAcc``... and the
    per-class table in the log) is kept; in addition ``IoU.<class>`` and
    ``Acc.<class>`` (percent; ``nan`` for a class absent from both the
    labels and the predictions) are returned, so they reach the scalar logs
    of every evaluation and can be compared between runs afterwards.
    Distributed evaluation is MMEngine's: per-rank areas are collected and
    summed before :meth:`compute_metrics`.
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        per_class = self.per_class_metrics(results)
        classes = self.dataset_meta['classes']
        for key, values in per_class.items():
            for name, value in zip(classes, values):
                metrics[f'{key}.{name}'] = float(np.round(value * 100, 2))
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

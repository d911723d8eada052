"""IoU metric that also reports every class and frequency buckets, so runs
can be compared per class and on the long tail."""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import MessageHub, print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from .buckets import bucket_indices, bucket_mean, resolve_frequency


def run_log_dir() -> Optional[str]:
    """The current run's log dir (``<work_dir>/<timestamp>``), or ``None``.

    A metric has no runner reference. Each runner creates its own logger
    (named after the run) writing ``<log_dir>/<timestamp>.log``, and the most
    recently created logger is MMEngine's current one, so its file names the
    directory. The visualizer is no substitute: MMSeg configs give it a
    fixed name, so a second runner in one process reuses the first one's.
    """
    from mmengine.logging import MMLogger
    try:
        log_file = MMLogger.get_current_instance().log_file
    except Exception:
        return None
    return osp.dirname(osp.abspath(log_file)) if log_file else None


def current_iter() -> Optional[int]:
    """Training iterations completed, as in the checkpoint name ``iter_N``.

    MMEngine's ``RuntimeInfoHook`` publishes ``iter`` (the 0-based index of
    the running iteration) before every training iteration, so during the
    validation after iteration ``N`` (and a test after training) the hub
    holds ``N - 1``. ``None`` when nothing was published (e.g.
    ``tools/test.py`` on a checkpoint).
    """
    try:
        value = MessageHub.get_current_instance().get_info('iter')
    except Exception:
        return None
    return None if value is None else int(value) + 1


def _json_float(value) -> Optional[float]:
    value = float(value)
    return None if np.isnan(value) else value


@METRICS.register_module()
class LongTailIoUMetric(IoUMetric):
    """:class:`~mmseg.evaluation.IoUMetric` plus per-class and bucket entries.

    Everything ``IoUMetric`` returns (``aAcc``, ``mIoU``, ``mAcc``... and the
    per-class table in the log) is kept; in addition ``IoU.<class>`` and
    ``Acc.<class>`` (percent; ``nan`` for a class absent from both the
    labels and the predictions) are returned, so they reach the scalar logs
    of every evaluation and can be compared between runs afterwards.

    With ``class_frequency`` the classes are split into buckets by
    :func:`sar_plugin.evaluation.buckets.make_buckets` (``bucket_rule``,
    ``bucket_cfg``) and ``mIoU.<bucket>`` (``mIoU.head``, ``mIoU.body``,
    ``mIoU.tail``; percent, nan-aware mean like ``mIoU``, ``nan`` for a
    bucket without any evaluated class) is returned too.

    At every evaluation the per-class table is written as JSON to
    ``<save_dir>/iter_<N>.json`` (``N`` = training iterations completed, as
    published in the message hub, see :func:`current_iter`;
    ``eval_<i>.json``, counting this metric's evaluations, when there is
    none; a suffix ``_<j>`` avoids overwriting another metric's file) and
    copied to ``<save_dir>/latest.json``. Keys:
    ``classes``, ``IoU``, ``Acc`` (percent, ``null`` for nan), ``counts``
    (ground-truth pixels per class over the evaluated set), ``frequency``
    (the train frequency given, else ``null``), ``buckets`` (bucket -> class
    names, or ``null``), ``bucket_mIoU``, ``mIoU``, ``aAcc``, ``iter``.

    Distributed evaluation is MMEngine's: per-rank areas are collected and
    summed on rank 0 before :meth:`compute_metrics`, which only rank 0 runs,
    so only rank 0 writes.

    Args:
        class_frequency (str | dict | list, optional): Path of the JSON of
            ``tools/analysis/class_frequency.py``, such a record, a
            ``{class: count}`` mapping or a list of counts/frequencies in
            class order.
        bucket_rule (str): ``'cumulative'`` (default), ``'thirds'`` or
            ``'counts'``.
        bucket_cfg (dict, optional): Keyword arguments of the rule
            (``head_share``, ``tail_share``, ``many_thr``, ``few_thr``).
        save_dir (str, optional): Where the JSON tables go. ``None``: the
            run's log dir + ``/longtail_eval`` (found through the current
            visualizer's local backend; skipped with a warning when there
            is none).
        save_json (bool): Write the JSON tables at all. Defaults to True.
        **kwargs: :class:`~mmseg.evaluation.IoUMetric` arguments.
    """

    def __init__(self,
                 class_frequency: Optional[Union[str, dict, Sequence]] = None,
                 bucket_rule: str = 'cumulative',
                 bucket_cfg: Optional[dict] = None,
                 save_dir: Optional[str] = None,
                 save_json: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.class_frequency = class_frequency
        self.bucket_rule = bucket_rule
        self.bucket_cfg = dict(bucket_cfg or {})
        self.save_dir = save_dir
        self.save_json = save_json
        self._num_evals = 0
        self._written: set = set()
        self._warned = False
        if class_frequency is not None:  # fail early on a bad input
            resolve_frequency(class_frequency)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        per_class = self.per_class_metrics(results)
        classes = list(self.dataset_meta['classes'])
        for key, values in per_class.items():
            for name, value in zip(classes, values):
                metrics[f'{key}.{name}'] = float(np.round(value * 100, 2))

        frequency = buckets = None
        bucket_miou: Dict[str, float] = {}
        if self.class_frequency is not None:
            values, _, _ = resolve_frequency(self.class_frequency, classes)
            total = values.sum()
            frequency = (values / total).tolist() if total > 0 else None
            buckets = bucket_indices(self.class_frequency, classes,
                                     self.bucket_rule, **self.bucket_cfg)
            for key, value in bucket_mean(per_class['IoU'], buckets).items():
                bucket_miou[key] = float(np.round(value * 100, 2))
                metrics[f'mIoU.{key}'] = bucket_miou[key]

        self._num_evals += 1
        if self.save_json:
            label_area = sum(r[3] for r in results)
            record = OrderedDict(
                classes=classes,
                IoU=[_json_float(metrics[f'IoU.{c}']) for c in classes],
                Acc=[_json_float(metrics[f'Acc.{c}']) for c in classes],
                counts=[int(v) for v in label_area.cpu().numpy().round()],
                frequency=frequency,
                buckets=None if buckets is None else OrderedDict(
                    (k, [classes[i] for i in v]) for k, v in buckets.items()),
                bucket_mIoU={k: _json_float(v)
                             for k, v in bucket_miou.items()} or None,
                mIoU=_json_float(metrics['mIoU']),
                aAcc=_json_float(metrics['aAcc']),
                iter=current_iter())
            self.save_table(record)
        return metrics

    def save_table(self, record: dict) -> Optional[str]:
        """Write ``record`` as this evaluation's JSON and ``latest.json``."""
        save_dir = self.save_dir
        if save_dir is None:
            log_dir = run_log_dir()
            if log_dir is None:
                if not self._warned:
                    print_log(
                        'LongTailIoUMetric: no save_dir and no run log dir '
                        '(no visualizer with a local backend); the per-class '
                        'JSON is not written', logger='current',
                        level=30)
                    self._warned = True
                return None
            save_dir = osp.join(log_dir, 'longtail_eval')
        os.makedirs(save_dir, exist_ok=True)
        stem = f"iter_{record['iter']}" if record.get('iter') is not None \
            else f'eval_{self._num_evals}'
        path, j = osp.join(save_dir, stem + '.json'), 0
        while osp.exists(path) and path not in self._written:
            j += 1
            path = osp.join(save_dir, f'{stem}_{j}.json')
        self._written.add(path)
        text = json.dumps(record, indent=2)
        for target in (path, osp.join(save_dir, 'latest.json')):
            with open(target, 'w') as f:
                f.write(text)
        return path

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

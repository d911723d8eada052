"""The evaluation label check for configs that use MMSeg's ``IoUMetric``.

:class:`~sar_plugin.evaluation.LongTailIoUMetric` checks its labels itself
(``strict_labels``). With MMSeg's own ``IoUMetric`` add this hook:
``custom_hooks = [dict(type='SegLabelCheckHook')]``. Before each validation
and test batch reaches the model and the metrics, labels outside
``[0, K)`` that are not ``ignore_index`` raise, naming the image
(``strict=True``), or are set to ``ignore_index`` so that no metric counts
the label or the prediction there, with one warning per evaluation.
"""
import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ..utils.labels import LabelRangeCheck


@HOOKS.register_module()
class SegLabelCheckHook(Hook):
    """Check validation/test labels against the data set's classes.

    Args:
        strict (bool): Raise on a bad label (default); False excludes the
            pixels and warns once per evaluation.
        ignore_index (int): The ignored label (MMSeg's default 255).
    """

    priority = 'VERY_HIGH'

    def __init__(self, strict: bool = True, ignore_index: int = 255) -> None:
        self.check = LabelRangeCheck(strict, ignore_index,
                                     'SegLabelCheckHook')

    def _check(self, loop, data_batch) -> None:
        classes = loop.dataloader.dataset.metainfo.get('classes')
        if not classes or not data_batch:
            return
        for sample in data_batch.get('data_samples', []):
            if 'gt_sem_seg' not in sample:
                continue
            label = sample.gt_sem_seg.data
            fixed = self.check(label, len(classes),
                               sample.metainfo.get('img_path',
                                                   'an image without img_path'))
            if fixed is not label:
                sample.gt_sem_seg.data = fixed

    def _flush(self) -> None:
        message = self.check.flush()
        if message:
            print_log(message, logger='current', level=logging.WARNING)

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._check(runner.val_loop, data_batch)

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._check(runner.test_loop, data_batch)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._flush()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._flush()

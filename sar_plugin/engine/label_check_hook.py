"""Label checks that name the file, for any segmentation config.

- Training (``train=True``): before each training batch reaches the model,
  a label outside ``[0, K)`` that is not ``ignore_index`` raises naming the
  sample's files, instead of MMSeg's ``IndexError: Target 20 is out of
  bounds`` without one (``SARHead`` does the same for its own losses).
  ``configs/_base_/sar_runtime.py`` lists the hook with
  ``evaluation=False``, so every shipped config, SAR or not, gets it.
- Evaluation (``evaluation=True``), for configs that use MMSeg's own
  ``IoUMetric`` (:class:`~sar_plugin.evaluation.LongTailIoUMetric` checks
  its labels itself, ``strict_labels``): before each validation and test
  batch, such labels raise, naming the image (``strict=True``), or are set
  to ``ignore_index`` so that no metric counts the label or the prediction
  there, with one warning per evaluation.
"""
import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ..utils.labels import LabelRangeCheck, check_sample_labels


@HOOKS.register_module()
class SegLabelCheckHook(Hook):
    """Check training and/or validation/test labels against the data set's
    classes.

    Args:
        strict (bool): Evaluation: raise on a bad label (default); False
            excludes the pixels and warns once per evaluation. A bad
            training label always raises.
        ignore_index (int): The ignored label (MMSeg's default 255).
        train (bool): Check training batches. Default True.
        evaluation (bool): Check validation and test batches. Default True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, strict: bool = True, ignore_index: int = 255,
                 train: bool = True, evaluation: bool = True) -> None:
        self.check = LabelRangeCheck(strict, ignore_index,
                                     'SegLabelCheckHook')
        self.ignore_index = ignore_index
        self.train = train
        self.evaluation = evaluation

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if not self.train or not data_batch:
            return
        classes = runner.train_dataloader.dataset.metainfo.get('classes')
        samples = [s for s in data_batch.get('data_samples', [])
                   if 'gt_sem_seg' in s]
        if classes and samples:
            check_sample_labels([s.gt_sem_seg.data for s in samples],
                                samples, len(classes), self.ignore_index,
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
        if self.evaluation:
            self._check(runner.val_loop, data_batch)

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.evaluation:
            self._check(runner.test_loop, data_batch)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._flush()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._flush()

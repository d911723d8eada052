"""The checks that refuse a bad run, as one hook.

- One run per work dir (:class:`~.work_dir_lock.WorkDirLock`): the lock is
  taken in ``before_run``, before the run writes to the work dir, and
  released after the run.
- Checkpoints: ``before_run`` (before MMEngine loads ``load_from`` or
  resumes) switches on
  :func:`~sar_plugin.utils.checkpoint.enable_safe_loading`, so MMEngine
  checkpoints load under torch >= 2.6's ``weights_only`` (refusing any other
  code in the file); ``after_load_checkpoint`` drops ``meta['config']`` (the
  config text MMEngine's resume would *execute*) and, on resume, refuses a
  checkpoint of another model (:func:`~.resume_check.check_resume`).
- Labels that name the file, for any segmentation config:

  - training (``train=True``): before each training batch reaches the
    model, a label outside ``[0, K)`` that is not ``ignore_index`` raises
    naming the sample's files, instead of MMSeg's ``IndexError: Target 20
    is out of bounds`` without one (``SARHead`` does the same for its own
    losses);
  - evaluation (``evaluation=True``), for configs that use MMSeg's own
    ``IoUMetric`` (:class:`~sar_plugin.evaluation.LongTailIoUMetric` checks
    its labels itself, ``strict_labels``): before each validation and test
    batch, such labels raise, naming the image (``strict=True``), or are
    set to ``ignore_index`` so that no metric counts the label or the
    prediction there, with one warning per evaluation.

``configs/_base_/sar_runtime.py`` lists it with ``evaluation=False``, so
every shipped config, SAR or not, gets it.
"""
import logging

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ..heads.sar_head import mark_runtime_hook
from ..utils.checkpoint import enable_safe_loading
from ..utils.labels import LabelRangeCheck, check_sample_labels
from .resume_check import check_resume, drop_meta_config
from .work_dir_lock import WorkDirLock

NAME = 'RunCheckHook'


@HOOKS.register_module()
class RunCheckHook(Hook):
    """Refuse a bad run: a busy work dir, a checkpoint that would run code or
    resume another model, labels outside the classes.

    ``VERY_HIGH`` priority: the lock is taken before any other hook writes
    to the work dir, and labels are checked before other hooks see a batch.

    Args:
        strict (bool): Evaluation labels: raise on a bad label (default);
            False excludes the pixels and warns once per evaluation. A bad
            training label always raises.
        ignore_index (int): The ignored label (MMSeg's default 255).
        train (bool): Check training labels. Default True.
        evaluation (bool): Check validation and test labels. Default True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, strict: bool = True, ignore_index: int = 255,
                 train: bool = True, evaluation: bool = True) -> None:
        self.check = LabelRangeCheck(strict, ignore_index, NAME)
        self.ignore_index = ignore_index
        self.train = train
        self.evaluation = evaluation
        self.lock = WorkDirLock()

    # --- the run and its checkpoints --------------------------------------
    def before_run(self, runner) -> None:
        if is_main_process():
            self.lock.acquire(runner.work_dir)
        enable_safe_loading()
        mark_runtime_hook(runner.model, NAME)

    def after_run(self, runner) -> None:
        self.lock.release()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        drop_meta_config(checkpoint)
        check_resume(runner, checkpoint)

    # --- labels -----------------------------------------------------------
    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if not self.train or not data_batch:
            return
        classes = runner.train_dataloader.dataset.metainfo.get('classes')
        samples = [s for s in data_batch.get('data_samples', [])
                   if 'gt_sem_seg' in s]
        if classes and samples:
            check_sample_labels([s.gt_sem_seg.data for s in samples],
                                samples, len(classes), self.ignore_index,
                                NAME)

    def _check(self, loop, data_batch) -> None:
        classes = loop.dataloader.dataset.metainfo.get('classes')
        if not classes or not data_batch:
            return
        for sample in data_batch.get('data_samples', []):
            if 'gt_sem_seg' not in sample:
                continue
            label = sample.gt_sem_seg.data
            path = sample.metainfo.get('img_path', 'an image without img_path')
            fixed = self.check(label, len(classes), path)
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

"""What the long-tail metrics need from the run, as one hook."""
from typing import Optional

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..evaluation.buckets import AUTO_FREQUENCY
from ..evaluation.longtail_base import longtail_metrics
from .class_frequency import frequency_file
from .feature_export import FeatureExporter


@HOOKS.register_module()
class LongTailEvalHook(Hook):
    """Hand the run's context to the long-tail metrics of the evaluator
    (:class:`~sar_plugin.evaluation.longtail_base.LongTailMetricMixin`).

    - Class frequency (``before_val``/``before_test``): a metric with
      ``class_frequency='auto'`` gets the file of the training split's class
      count, counted once and cached in the work dir
      (:func:`~.class_frequency.frequency_file`). A metric left at
      ``'auto'`` without this hook raises at evaluation (buckets are never
      silently absent).
    - Record dir (``before_val``/``before_test``, after the frequency):
      ``runner.log_dir`` (``<work_dir>/<timestamp>``) goes to each metric,
      so its records land in ``<log_dir>/longtail_eval`` and
      ``feature_eval``. A metric's own ``record_dir`` still wins; without
      this hook (and without ``record_dir``) no record is written.
    - Features (``before_val_epoch`` to ``after_val_epoch``, and the same
      for test): the classifier's input of every image is attached to its
      predicted data sample for
      :class:`~sar_plugin.evaluation.FeatureCompactnessMetric`
      (:class:`~.feature_export.FeatureExporter`, sliding windows
      included); nothing is left installed afterwards.

    ``configs/_base_/sar_runtime.py`` lists it, and ``tools/test.py
    --longtail`` adds it. ``HIGH`` priority: the metrics have their
    frequency and log dir before any ``NORMAL`` hook runs, and everything
    is in place before the evaluation loop. Config::

        custom_hooks = [dict(type='LongTailEvalHook')]

    Args:
        split (str): The split counted for ``class_frequency='auto'``.
            Defaults to ``'train'``.
        cache_dir (str, optional): Where the count is kept; ``None``: the
            run's ``work_dir``.
        classifier (str, optional): Dotted path of the classifier layer
            whose input is exported; ``None`` finds it
            (:func:`~.feature_export.find_classifier`).
        field (str): Data-sample field the feature is written to (the
            metric's ``feature_field``). Defaults to ``'seg_features'``.
        to_cpu (bool): Move the features to the CPU. Defaults to True.
    """

    priority = 'HIGH'

    def __init__(self, split: str = 'train',
                 cache_dir: Optional[str] = None,
                 classifier: Optional[str] = None,
                 field: str = 'seg_features', to_cpu: bool = True) -> None:
        self.split = split
        self.cache_dir = cache_dir
        self.features = FeatureExporter(classifier, field, to_cpu)
        self._frequency_path: Optional[str] = None

    # --- class frequency and record dir -----------------------------------
    def before_val(self, runner) -> None:
        self._prepare_metrics(runner, runner.val_loop)

    def before_test(self, runner) -> None:
        self._prepare_metrics(runner, runner.test_loop)

    def _prepare_metrics(self, runner, loop) -> None:
        metrics = longtail_metrics(loop)
        auto = [m for m in metrics if m.class_frequency == AUTO_FREQUENCY]
        if auto:
            path = self.frequency_file(runner)
            for metric in auto:
                metric.class_frequency = path
        for metric in metrics:
            metric.set_log_dir(runner.log_dir)

    def frequency_file(self, runner) -> str:
        """The cached count of the split, counted first when missing (once
        per hook)."""
        if self._frequency_path is None:
            self._frequency_path = frequency_file(runner, self.split,
                                                  self.cache_dir)
        return self._frequency_path

    # --- features ---------------------------------------------------------
    def before_val_epoch(self, runner) -> None:
        self.features.install(runner.model)

    def before_test_epoch(self, runner) -> None:
        self.features.install(runner.model)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.features.remove()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.features.remove()

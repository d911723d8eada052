"""Tell the long-tail metrics the run's log dir, where their records go."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..evaluation.longtail_base import longtail_metrics


@HOOKS.register_module()
class RecordDirHook(Hook):
    """Before every validation and test, hand ``runner.log_dir``
    (``<work_dir>/<timestamp>``) to each metric of the evaluator that writes
    records (a
    :class:`~sar_plugin.evaluation.longtail_base.LongTailMetricMixin`), so
    they land in ``<log_dir>/longtail_eval`` and ``feature_eval``.

    A metric's own ``record_dir`` still wins; without this hook (and without
    ``record_dir``) no record is written. Config::

        custom_hooks = [dict(type='RecordDirHook')]
    """

    def before_val(self, runner) -> None:
        self._hand_over(runner, runner.val_loop)

    def before_test(self, runner) -> None:
        self._hand_over(runner, runner.test_loop)

    @staticmethod
    def _hand_over(runner, loop) -> None:
        for metric in longtail_metrics(loop):
            metric.set_log_dir(runner.log_dir)

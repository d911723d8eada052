"""What the long-tail metrics share: where the class frequency comes from,
how classes are bucketed, how per-class and per-bucket results are keyed,
and where the evaluation records go."""
import math
from typing import Dict, Optional, Sequence, Union

import numpy as np

from .buckets import (AUTO_FREQUENCY, ClassBuckets, frequency_source,
                      resolve_frequency)
from .records import SCORE_SUBDIR, Record, RecordWriter

#: with ``per_class_keys=None``, per-class keys are returned up to this many
#: classes (a thousand ImageNet-LT classes would flood the scalar logs)
MAX_PER_CLASS_KEYS = 100
#: old argument names -> the unified ones (refused with that hint, as
#: ``IoUMetric`` would silently swallow them)
RENAMED = dict(save_json='save_records', save_dir='record_dir',
               feature_keys='feature_field')


class LongTailMetricMixin:
    """Long-tail arguments and helpers of :class:`LongTailIoUMetric`,
    :class:`LongTailAccuracy` and :class:`FeatureCompactnessMetric`; put it
    first among the bases (it takes its keyword arguments and passes the
    rest on).

    Buckets: with a class frequency (``class_frequency``, or else the data
    set's ``train_class_counts`` metainfo when it has one, as the embedded
    synthetic set and the CIFAR-LT sets do) the classes are split by
    :func:`~sar_plugin.evaluation.buckets.make_buckets` (``bucket_rule``,
    ``bucket_cfg``) and every bucket's nan-aware mean is returned as
    ``<name>.<bucket>``.

    Records: at every evaluation a record
    (:mod:`~sar_plugin.evaluation.records`) goes to ``record_dir``, else to
    ``<log_dir>/<record_subdir>`` where ``log_dir`` is the runner's, handed
    over by :class:`~sar_plugin.engine.LongTailEvalHook`; with neither, nothing
    is written (one warning). Only rank 0 writes.

    Args:
        class_frequency (str | dict | list, optional): Path of the JSON of
            ``tools/analysis/class_frequency.py``, such a record, a
            ``{class: count}`` mapping or a list of counts/frequencies in
            class order. ``'auto'``: the training split counted once by
            :class:`~sar_plugin.engine.LongTailEvalHook` (cached in the
            work dir). ``None``: the data set's ``train_class_counts``
            metainfo if any, else no buckets.
        bucket_rule (str, optional): ``'cumulative'``, ``'thirds'`` or
            ``'counts'``; ``None``: the metric's ``default_bucket_rule``.
        bucket_cfg (dict, optional): Keyword arguments of the rule
            (``head_share``, ``tail_share``, ``many_thr``, ``few_thr``).
        per_class_keys (bool, optional): Return ``<name>.<class>`` entries;
            ``None``: when there are at most :data:`MAX_PER_CLASS_KEYS`
            classes. The records always hold every class.
        save_records (bool): Write the records at all. Defaults to True.
        record_dir (str, optional): Where the records go instead of
            ``<log_dir>/<record_subdir>``.
    """
    #: folder of the records under the run's log dir
    record_subdir = SCORE_SUBDIR
    default_bucket_rule = 'cumulative'

    def __init__(self,
                 *args,
                 class_frequency: Optional[Union[str, dict,
                                                 Sequence]] = None,
                 bucket_rule: Optional[str] = None,
                 bucket_cfg: Optional[dict] = None,
                 per_class_keys: Optional[bool] = None,
                 save_records: bool = True,
                 record_dir: Optional[str] = None,
                 **kwargs) -> None:
        renamed = [f'{old} is now {RENAMED[old]}' for old in RENAMED
                   if old in kwargs]
        if renamed:
            raise TypeError(f'{type(self).__name__}: ' + '; '.join(renamed))
        super().__init__(*args, **kwargs)
        if class_frequency is not None and \
                not (isinstance(class_frequency, str)
                     and class_frequency == AUTO_FREQUENCY):
            try:  # fail early on a bad input
                resolve_frequency(class_frequency)
            except (KeyError, TypeError, ValueError) as err:
                raise type(err)(f'{type(self).__name__}: class_frequency: '
                                f'{err.args[0] if err.args else err}'
                                ) from err
        self.class_frequency = class_frequency
        self.bucket_rule = bucket_rule or self.default_bucket_rule
        self.bucket_cfg = dict(bucket_cfg or {})
        self.per_class_keys = per_class_keys
        self.save_records = save_records
        self.writer = RecordWriter(self.record_subdir, record_dir,
                                   type(self).__name__)

    def set_log_dir(self, log_dir: Optional[str]) -> None:
        """The run's log dir (``runner.log_dir``) the records go under."""
        self.writer.log_dir = log_dir

    def class_buckets(self, classes: Sequence) -> Optional[ClassBuckets]:
        """The buckets of ``classes``, or ``None`` without a frequency."""
        source = frequency_source(self.class_frequency, self.dataset_meta)
        if source is None:
            return None
        try:
            return ClassBuckets.make(source, classes, self.bucket_rule,
                                     self.bucket_cfg)
        except (KeyError, TypeError, ValueError) as err:
            raise type(err)(f'{type(self).__name__}: class_frequency: '
                            f'{err.args[0] if err.args else err}') from err

    def bucket_results(self, name: str, classes: Sequence,
                       fractions: Sequence[float],
                       metrics: Dict[str, float]) -> dict:
        """Add ``<name>.<bucket>`` (percent) of the per-class ``fractions``
        to ``metrics``; return the bucket fields of a
        :class:`~sar_plugin.evaluation.records.ScoreRecord` (none without a
        frequency)."""
        buckets = self.class_buckets(classes)
        if buckets is None:
            return {}
        scores = buckets.percent_means(fractions)
        metrics.update(keyed(name, scores, scores.values()))
        return dict(frequency=buckets.frequency, train_counts=buckets.counts,
                    buckets=buckets.names, bucket_rule=buckets.rule,
                    bucket_scores=scores)

    def per_class_entries(self, name: str, classes: Sequence,
                          values: Sequence[float]) -> Dict[str, float]:
        """``{<name>.<class>: value}``, or nothing when per-class keys are
        off (see ``per_class_keys``)."""
        show = self.per_class_keys if self.per_class_keys is not None \
            else len(classes) <= MAX_PER_CLASS_KEYS
        return keyed(name, classes, values) if show else {}

    def save_record(self, record: Record,
                    arrays: Optional[Dict[str, np.ndarray]] = None) -> None:
        """Write ``record`` (and ``arrays``) when ``save_records``."""
        if self.save_records:
            self.writer.write(record, arrays)


def keyed(name: str, labels: Sequence, values: Sequence) -> Dict[str, float]:
    """``{<name>.<label>: value}``: the key of a class or bucket result.

    A label without a value (``nan``/``None``: a class absent from the
    evaluated set, a bucket with no evaluated class) is left out, so the
    logs never show ``mAcc.many: nan``; the records keep it as ``null``.
    """
    return {f'{name}.{label}': value for label, value in zip(labels, values)
            if value is not None and math.isfinite(value)}


def longtail_metrics(loop) -> list:
    """The :class:`LongTailMetricMixin` metrics of a validation or test
    loop's evaluator (none when the loop or evaluator is missing)."""
    evaluator = getattr(loop, 'evaluator', None)
    return [m for m in getattr(evaluator, 'metrics', ())
            if isinstance(m, LongTailMetricMixin)]

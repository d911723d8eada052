"""Where evaluation records go and what they hold: one JSON (and optional
``.npz``) per evaluation under the run's log dir, so reports can be made
from a finished run without re-running it.

Layout (``<log_dir>`` is the runner's ``log_dir``, ``<work_dir>/<timestamp>``,
handed to the metrics by :class:`~sar_plugin.engine.LongTailEvalHook`)::

    <log_dir>/<subdir>/iter_<N>.json     # N = training iterations completed
    <log_dir>/<subdir>/iter_<N>.npz      # arrays, when the metric has any
    <log_dir>/<subdir>/latest.json       # copy of the newest record
    <log_dir>/<subdir>/latest.npz

with ``<subdir>`` :data:`SCORE_SUBDIR` (:class:`ScoreRecord`) or
:data:`FEATURE_SUBDIR` (:class:`FeatureRecord`). ``tools/test.py`` on a
checkpoint has no iteration count: records are then named ``eval_<i>``
(``i`` counts the metric's evaluations).
"""
import json
import os
import os.path as osp
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

import numpy as np
from mmengine.dist import is_main_process
from mmengine.logging import MessageHub, print_log

#: sub-directory of the log dir holding the per-class score records
SCORE_SUBDIR = 'longtail_eval'
#: sub-directory of the log dir holding the feature-compactness records
FEATURE_SUBDIR = 'feature_eval'
#: the per-class score lists a :class:`ScoreRecord` may carry, in file order
SCORE_NAMES = ('IoU', 'Acc')
#: the per-class lists of a :class:`FeatureRecord`, in file order
FEATURE_LISTS = ('intra', 'nearest_mean_dist', 'fisher', 'silhouette')

Floats = Dict[str, float]


def json_float(value) -> Optional[float]:
    """``float(value)``, with ``nan`` as ``None`` (JSON has no NaN)."""
    value = float(value)
    return None if np.isnan(value) else value


def _floats_out(values) -> list:
    return [json_float(v) for v in values]


def _floats_in(values) -> List[float]:
    return [float('nan') if v is None else float(v) for v in values]


def _map_out(mapping: Optional[Floats]) -> Optional[dict]:
    return None if mapping is None else OrderedDict(
        (k, json_float(v)) for k, v in mapping.items())


def _map_in(mapping: Optional[dict]) -> Optional[Floats]:
    return None if mapping is None else OrderedDict(
        (k, float('nan') if v is None else float(v))
        for k, v in mapping.items())


@dataclass
class ScoreRecord:
    """Per-class scores of one evaluation (``LongTailIoUMetric``,
    ``LongTailAccuracy``). Floats are ``nan`` where not evaluable (``null``
    in the file).

    Attributes:
        task: ``'segmentation'`` or ``'classification'``.
        score: The per-class score reports plot (``'IoU'`` or ``'Acc'``).
        classes: Class names, in the data set's order.
        scores: Per-class lists in percent by name (:data:`SCORE_NAMES`).
        counts: Ground-truth pixels / samples per class in the evaluated set
            (``None`` for an old record without them).
        frequency: Per-class training share, ``None`` without a frequency.
        train_counts: Training samples per class (written for
            classification only).
        buckets: Bucket name -> class names (``None`` without a frequency).
        bucket_rule: How the buckets were made (a sentence).
        bucket_scores: Bucket name -> mean score (percent).
        summary: Overall metrics (``mIoU``, ``mAcc``, ``aAcc`` or ``top1``,
            ``top5``, ``mAcc``).
        iter: Training iterations completed at the evaluation.
    """
    task: str
    score: str
    classes: List[str]
    scores: Dict[str, List[float]]
    counts: Optional[List[int]] = None
    frequency: Optional[List[float]] = None
    train_counts: Optional[List[int]] = None
    buckets: Optional[Dict[str, List[str]]] = None
    bucket_rule: Optional[str] = None
    bucket_scores: Optional[Floats] = None
    summary: Floats = field(default_factory=OrderedDict)
    iter: Optional[int] = None

    def to_json(self) -> 'OrderedDict[str, object]':
        out = OrderedDict(task=self.task, score=self.score,
                          classes=list(self.classes))
        for name in SCORE_NAMES:
            if name in self.scores:
                out[name] = _floats_out(self.scores[name])
        out['counts'] = self.counts
        if self.task == 'classification':
            out['train_counts'] = self.train_counts
        out.update(frequency=self.frequency, buckets=self.buckets,
                   bucket_rule=self.bucket_rule,
                   bucket_scores=_map_out(self.bucket_scores),
                   summary=_map_out(self.summary), iter=self.iter)
        return out

    @classmethod
    def from_json(cls, rec: dict) -> 'ScoreRecord':
        """Read a record (older ones may lack ``task``, ``score`` (IoU),
        ``counts`` and ``summary``, whose values then stood at the top).

        Raises:
            KeyError: When ``classes`` or the per-class score is missing.
        """
        score = rec.get('score', 'IoU')
        classes = [str(c) for c in rec['classes']]
        scores = OrderedDict((name, _floats_in(rec[name]))
                             for name in SCORE_NAMES if name in rec)
        if score not in scores:
            raise KeyError(score)
        summary = rec.get('summary') or {
            k: rec[k] for k in ('mIoU', 'mAcc', 'aAcc') if k in rec}
        return cls(
            task=rec.get('task', 'segmentation'), score=score,
            classes=classes, scores=scores, counts=rec.get('counts'),
            frequency=rec.get('frequency'),
            train_counts=rec.get('train_counts'),
            buckets=None if rec.get('buckets') is None else OrderedDict(
                rec['buckets']),
            bucket_rule=rec.get('bucket_rule'),
            bucket_scores=_map_in(rec.get('bucket_scores') or {}),
            summary=_map_in(summary), iter=rec.get('iter'))


@dataclass
class FeatureRecord:
    """Feature compactness of one evaluation (``FeatureCompactnessMetric``;
    definitions in :mod:`sar_plugin.evaluation.compactness`).

    Attributes:
        classes: Class names.
        num_samples: Sampled features per class.
        summary: ``fisher``, ``silhouette``, ``intra_mean``,
            ``nearest_mean_dist_mean``, ``mean_pairwise_mean_dist``.
        per_class: :data:`FEATURE_LISTS` -> per-class values.
        buckets: Bucket name -> class names (``None`` without a frequency).
        bucket_stats: Bucket -> {:data:`FEATURE_LISTS` name: value}.
        iter: Training iterations completed at the evaluation.
    """
    classes: List[str]
    num_samples: List[int]
    summary: Floats
    per_class: Dict[str, List[float]]
    buckets: Optional[Dict[str, List[str]]] = None
    bucket_stats: Optional[Dict[str, Floats]] = None
    iter: Optional[int] = None

    def to_json(self) -> 'OrderedDict[str, object]':
        out = OrderedDict(task='features', classes=list(self.classes),
                          num_samples=list(self.num_samples),
                          summary=_map_out(self.summary))
        for name in FEATURE_LISTS:
            out[name] = _floats_out(self.per_class[name])
        out.update(buckets=self.buckets, bucket_stats=None if not
                   self.bucket_stats else OrderedDict(
                       (b, _map_out(v)) for b, v in self.bucket_stats.items()),
                   iter=self.iter)
        return out

    @classmethod
    def from_json(cls, rec: dict) -> 'FeatureRecord':
        return cls(
            classes=[str(c) for c in rec['classes']],
            num_samples=list(rec['num_samples']),
            summary=_map_in(rec.get('summary') or {}),
            per_class=OrderedDict((name, _floats_in(rec[name]))
                                  for name in FEATURE_LISTS if name in rec),
            buckets=rec.get('buckets'),
            bucket_stats=None if not rec.get('bucket_stats') else OrderedDict(
                (b, _map_in(v)) for b, v in rec['bucket_stats'].items()),
            iter=rec.get('iter'))


Record = Union[ScoreRecord, FeatureRecord]


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


class RecordWriter:
    """Writes a metric's per-evaluation records (see the module docstring).

    Args:
        subdir (str): Folder under the run's log dir (:data:`SCORE_SUBDIR`
            or :data:`FEATURE_SUBDIR`).
        record_dir (str, optional): Write here instead of
            ``<log_dir>/<subdir>``.
        owner (str): Name used in the warning printed once when there is
            neither ``record_dir`` nor a run log dir.

    Attributes:
        log_dir (str | None): The run's log dir, set through the metric's
            ``set_log_dir`` by :class:`~sar_plugin.engine.LongTailEvalHook`.
    """

    def __init__(self, subdir: str, record_dir: Optional[str] = None,
                 owner: str = 'metric') -> None:
        self.subdir = subdir
        self.record_dir = record_dir
        self.owner = owner
        self.log_dir: Optional[str] = None
        self.num_writes = 0
        self._written: set = set()
        self._warned = False

    def target_dir(self) -> Optional[str]:
        if self.record_dir is not None:
            return self.record_dir
        if self.log_dir is None:
            if not self._warned:
                print_log(
                    f'{self.owner}: no record_dir and no run log dir (add '
                    "dict(type='LongTailEvalHook') to custom_hooks); the "
                    f'{self.subdir} records are not written',
                    logger='current', level=30)
                self._warned = True
            return None
        return osp.join(self.log_dir, self.subdir)

    def write(self, record: Record,
              arrays: Optional[Dict[str, np.ndarray]] = None) -> Optional[str]:
        """Write ``record`` (and ``arrays`` as ``.npz``) on the main process.

        ``record.iter`` is set from :func:`current_iter` when ``None``.

        Returns:
            str | None: The JSON path, or ``None`` when nothing was written.
        """
        self.num_writes += 1
        if record.iter is None:
            record.iter = current_iter()
        if not is_main_process():
            return None
        save_dir = self.target_dir()
        if save_dir is None:
            return None
        os.makedirs(save_dir, exist_ok=True)
        stem = f'iter_{record.iter}' if record.iter is not None \
            else f'eval_{self.num_writes}'
        path, j = osp.join(save_dir, stem + '.json'), 0
        # a second evaluation at the same iteration (a test after training)
        # gets its own file; rewriting our own file is fine
        while osp.exists(path) and path not in self._written:
            j += 1
            path = osp.join(save_dir, f'{stem}_{j}.json')
        self._written.add(path)
        # every file appears whole or not at all (temp file + rename): a
        # reader never sees a half-written record
        _atomic_write(path, lambda f: f.write(
            json.dumps(record.to_json(), indent=2).encode()))
        _atomic_copy(path, osp.join(save_dir, 'latest.json'))
        if arrays is not None:
            npz = path[:-len('.json')] + '.npz'
            _atomic_write(npz, lambda f: np.savez_compressed(f, **arrays))
            _atomic_copy(npz, osp.join(save_dir, 'latest.npz'))
        return path


def _atomic_write(path: str, write) -> None:
    """``write(f)`` to a temporary file beside ``path``, then rename it to
    ``path`` (atomic on POSIX)."""
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path),
                               prefix=f'.{osp.basename(path)}.')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _atomic_copy(src: str, dst: str) -> None:
    with open(src, 'rb') as f:
        data = f.read()
    _atomic_write(dst, lambda out: out.write(data))

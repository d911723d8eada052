"""Read a finished run's evaluation records back (no re-running).

A run is what ``tools/train.py`` / ``tools/test.py`` leave in a work dir:
``<work_dir>/<timestamp>/longtail_eval/*.json``
(:class:`~sar_plugin.evaluation.records.ScoreRecord`) written by
:class:`~sar_plugin.evaluation.LongTailIoUMetric` (segmentation) or the
classification ``LongTailAccuracy`` metric, and optionally
``<work_dir>/<timestamp>/feature_eval/*.{json,npz}``
(:class:`~sar_plugin.evaluation.records.FeatureRecord`) written by
:class:`~sar_plugin.evaluation.FeatureCompactnessMetric`.

Where the run was evaluated (:class:`Evaluated`): a training run's record
holds the iteration; ``tools/test.py`` on a checkpoint has none, so the
checkpoint's own meta (``meta['iter']``, ``meta['epoch']``, as MMEngine
saves them) is read, loaded weights-only
(:func:`sar_plugin.utils.checkpoint.load_checkpoint_file`). The checkpoint
is the one given (``tools/longtail_report.py --checkpoints``), else the
``load_from`` of the config MMEngine dumped beside the record
(``<work_dir>/<timestamp>/vis_data/config.py``, or the config logged in
``<work_dir>/<timestamp>/<timestamp>.log``); a checkpoint file that is
gone still tells its ``iter_<N>.pth`` / ``epoch_<N>.pth`` name.
"""
import glob
import json
import os.path as osp
import re
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..evaluation.records import (FEATURE_SUBDIR, SCORE_SUBDIR,
                                  FeatureRecord, ScoreRecord)


@dataclass
class Evaluated:
    """When a run was evaluated.

    Attributes:
        iter: Training iterations completed (``None``: unknown).
        epoch: Training epochs completed, for an epoch-based run.
        source: Where that comes from: ``'record'``, ``'checkpoint meta'``,
            ``'checkpoint name'`` or ``None`` (unknown).
        checkpoint: The checkpoint evaluated, when known.
        note: Why nothing better was found (a sentence), or ``None``.
    """
    iter: Optional[int] = None
    epoch: Optional[int] = None
    source: Optional[str] = None
    checkpoint: Optional[str] = None
    note: Optional[str] = None

    def describe(self) -> str:
        """``'iter 1000'``, ``'epoch 12 (iter 3000)'`` or ``'n/a'``."""
        if self.epoch:
            return f'epoch {self.epoch}' + (
                '' if self.iter is None else f' (iter {self.iter})')
        return 'n/a' if self.iter is None else f'iter {self.iter}'

    def to_json(self) -> dict:
        return dict(iter=self.iter, epoch=self.epoch, source=self.source,
                    checkpoint=self.checkpoint, note=self.note)


#: ``load_from = '...'`` in a config MMEngine dumped
_LOAD_FROM = re.compile(
    r"""^load_from\s*=\s*(?P<q>['"])(?P<path>.+?)(?P=q)""", re.M)
#: ``iter_1000.pth``, ``epoch_12.pth``, ``best_mIoU_iter_1000.pth``
_CKPT_NAME = re.compile(r'(?:^|_)(iter|epoch)_(\d+)\.pth$')


def dumped_checkpoint(log_dir: str) -> Optional[str]:
    """The ``load_from`` of the config MMEngine dumped in ``log_dir``
    (``vis_data/config.py`` of a ``LocalVisBackend``, else the config the
    runner logs in ``<timestamp>.log``; ``tools/test.py`` sets it to the
    checkpoint it evaluates), or ``None``. Read as text, never run."""
    for path in sorted(glob.glob(osp.join(log_dir, 'vis_data', '*.py'))) + \
            sorted(glob.glob(osp.join(log_dir, '*.log'))):
        try:
            with open(path) as f:
                match = _LOAD_FROM.search(f.read())
        except (OSError, UnicodeDecodeError):
            continue
        if match:
            return match.group('path')
    return None


def _int(value) -> Optional[int]:
    try:
        return None if value is None or isinstance(value, bool) else int(
            value)
    except (TypeError, ValueError):
        return None


def checkpoint_position(checkpoint: str) -> Evaluated:
    """Iteration and epoch of a checkpoint: its ``meta`` when the file loads
    weights-only, else its ``iter_<N>`` / ``epoch_<N>`` name."""
    from ..utils.checkpoint import CheckpointLoadError, load_checkpoint_file
    found = Evaluated(checkpoint=checkpoint)
    path = osp.expanduser(checkpoint)
    if osp.isfile(path):
        try:
            ckpt = load_checkpoint_file(path)
        except CheckpointLoadError as err:
            found.note = f'checkpoint meta not read: {err}'
        else:
            meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
            if isinstance(meta, dict) and (_int(meta.get('iter')) is not None
                                           or _int(meta.get('epoch'))):
                found.iter, found.epoch = _int(meta.get('iter')), \
                    _int(meta.get('epoch'))
                found.source = 'checkpoint meta'
                return found
            found.note = 'the checkpoint has no meta iter/epoch'
    else:
        found.note = 'the checkpoint file is not there any more'
    match = _CKPT_NAME.search(osp.basename(path))
    if match:
        setattr(found, match.group(1), int(match.group(2)))
        found.source = 'checkpoint name'
    return found


def evaluated(record_iter: Optional[int], record_path: str,
              checkpoint: Optional[str] = None) -> Evaluated:
    """Where a run was evaluated: the checkpoint given, else the record's
    iteration, else the checkpoint its config dump names."""
    if checkpoint is None:
        if record_iter is not None:
            return Evaluated(iter=int(record_iter), source='record')
        log_dir = osp.dirname(osp.dirname(osp.abspath(record_path)))
        checkpoint = dumped_checkpoint(log_dir)
        if checkpoint is None:
            return Evaluated(note=(
                'the record has no iteration, as when tools/test.py '
                'evaluates a checkpoint, and no dumped config names one: '
                'give it with tools/longtail_report.py --checkpoints'))
    found = checkpoint_position(checkpoint)
    if found.source is None and record_iter is not None:
        found.iter, found.source = int(record_iter), 'record'
    return found


@dataclass
class RunRecord:
    """One evaluation of one run, as the report needs it: the fields of its
    :class:`~sar_plugin.evaluation.records.ScoreRecord` (``score_name`` is
    its ``score``, ``scores`` the per-class ``score`` list, ``eval_counts``
    its ``counts``, ``iteration`` its ``iter``; per-class lists as float
    arrays with ``nan`` where not evaluable), and:

    Attributes:
        name: Label of the run in the report.
        source: The JSON record read.
        features: The feature record of the same evaluation, if any.
        feature_sample: ``(features M x C, labels M)`` saved with it.
        evaluated: When the run was evaluated (iteration / epoch, from the
            record or the checkpoint's meta).
    """
    name: str
    source: str
    task: str
    score_name: str
    classes: List[str]
    scores: np.ndarray
    frequency: Optional[np.ndarray]
    eval_counts: np.ndarray
    buckets: Optional[Dict[str, List[str]]]
    bucket_scores: Dict[str, float]
    summary: Dict[str, float]
    iteration: Optional[int] = None
    bucket_rule: Optional[str] = None
    features: Optional[FeatureRecord] = None
    feature_sample: Optional[Tuple[np.ndarray, np.ndarray]] = field(
        default=None, repr=False)
    evaluated: Evaluated = field(default_factory=Evaluated)


def _newest_log_dir(run_dir: str) -> str:
    """The newest ``<timestamp>`` dir of ``run_dir`` with a score record."""
    found = sorted(
        glob.glob(osp.join(run_dir, '*', SCORE_SUBDIR, 'latest.json')))
    if not found:
        raise FileNotFoundError(
            f'{run_dir}: no {SCORE_SUBDIR}/latest.json under any log dir; '
            'was it trained or tested with LongTailIoUMetric / '
            'LongTailAccuracy in its evaluator?')
    return osp.dirname(osp.dirname(found[-1]))


def find_record(path: str) -> str:
    """The score record a path means.

    ``path`` may be a work dir (the newest log dir with a record is used),
    a log dir (``<work_dir>/<timestamp>``), its ``longtail_eval`` dir, or
    a record JSON itself.
    """
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path}: no such run dir or record')
    for candidate in (osp.join(path, 'latest.json'),
                      osp.join(path, SCORE_SUBDIR, 'latest.json')):
        if osp.isfile(candidate):
            return candidate
    return osp.join(_newest_log_dir(path), SCORE_SUBDIR, 'latest.json')


def _feature_files(record_path: str) -> Tuple[Optional[str], Optional[str]]:
    """The feature record of the same evaluation (same file stem), else the
    newest one of that log dir."""
    log_dir = osp.dirname(osp.dirname(osp.abspath(record_path)))
    stem = osp.splitext(osp.basename(record_path))[0]
    for name in (stem, 'latest'):
        json_path = osp.join(log_dir, FEATURE_SUBDIR, name + '.json')
        if osp.isfile(json_path):
            npz = json_path[:-len('.json')] + '.npz'
            return json_path, npz if osp.isfile(npz) else None
    return None, None


def load_run(path: str, name: Optional[str] = None,
             checkpoint: Optional[str] = None) -> RunRecord:
    """Read one run (see :func:`find_record` for what ``path`` may be);
    ``checkpoint``: the checkpoint it evaluated, whose meta tells the
    iteration (default: found as :func:`evaluated` says)."""
    record_path = find_record(path)
    with open(record_path) as f:
        try:
            rec = ScoreRecord.from_json(_read_json(f, record_path))
        except KeyError as err:
            raise KeyError(f'{record_path}: not a long-tail record (missing '
                           f'{err}); expected keys classes, score and '
                           'per-class scores') from err
    if name is None:
        name = osp.basename(osp.normpath(path)) if osp.isdir(path) else \
            osp.splitext(osp.basename(path))[0]
    counts = rec.counts or [np.nan] * len(rec.classes)
    run = RunRecord(
        name=name,
        source=record_path,
        task=rec.task,
        score_name=rec.score,
        classes=rec.classes,
        scores=np.asarray(rec.scores[rec.score], np.float64),
        frequency=None if rec.frequency is None else np.asarray(
            rec.frequency, np.float64),
        eval_counts=np.asarray(counts, np.float64),
        buckets=rec.buckets,
        bucket_scores=rec.bucket_scores,
        summary=rec.summary,
        iteration=rec.iter,
        bucket_rule=rec.bucket_rule,
        evaluated=evaluated(rec.iter, record_path, checkpoint))
    if run.iteration is None:
        run.iteration = run.evaluated.iter
    feat_json, feat_npz = _feature_files(record_path)
    if feat_json is not None:
        with open(feat_json) as f:
            run.features = FeatureRecord.from_json(_read_json(f, feat_json))
        if feat_npz is not None:
            try:
                with np.load(feat_npz) as data:
                    run.feature_sample = (
                        data['features'].astype(np.float32),
                        data['labels'].astype(np.int64))
            except (OSError, ValueError, KeyError, EOFError,
                    zipfile.BadZipFile) as err:
                raise ValueError(
                    f'{feat_npz}: not a readable feature sample ('
                    f'{type(err).__name__}: {err}); a run killed while '
                    'writing it? Re-run the evaluation') from err
    return run


def _read_json(f, path: str):
    try:
        return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f'{path}: not a readable record ({err}); a run '
                         'killed while writing it? Re-run the evaluation'
                         ) from err


def check_comparable(runs: List[RunRecord]) -> None:
    """Runs compared side by side must share task, score and classes."""
    first = runs[0]
    for run in runs[1:]:
        if (run.task, run.score_name, run.classes) != \
                (first.task, first.score_name, first.classes):
            raise ValueError(
                f'runs {first.name!r} and {run.name!r} cannot be compared: '
                f'{first.task}/{first.score_name} over {first.classes} vs '
                f'{run.task}/{run.score_name} over {run.classes}')


def class_order(runs: List[RunRecord]) -> Tuple[np.ndarray, np.ndarray, str]:
    """Classes by descending training frequency (of the first run that has
    one; else by their share of the evaluated set).

    Returns:
        tuple: ``(order, share, basis)`` with ``share`` the per-class share
        (class order) and ``basis`` ``'train'`` or ``'eval'``.
    """
    share, basis = None, 'train'
    for run in runs:
        if run.frequency is not None:
            share = run.frequency
            break
    if share is None:
        counts = np.nan_to_num(runs[0].eval_counts)
        share = counts / counts.sum() if counts.sum() > 0 else counts
        basis = 'eval'
    order = np.argsort(-share, kind='stable')
    return order, share, basis

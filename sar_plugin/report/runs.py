"""Read a finished run's evaluation records back (no re-running).

A run is what ``tools/train.py`` / ``tools/test.py`` leave in a work dir:
``<work_dir>/<timestamp>/longtail_eval/*.json``
(:class:`~sar_plugin.evaluation.records.ScoreRecord`) written by
:class:`~sar_plugin.evaluation.LongTailIoUMetric` (segmentation) or the
classification ``LongTailAccuracy`` metric, and optionally
``<work_dir>/<timestamp>/feature_eval/*.{json,npz}``
(:class:`~sar_plugin.evaluation.records.FeatureRecord`) written by
:class:`~sar_plugin.evaluation.FeatureCompactnessMetric`.
"""
import glob
import json
import os.path as osp
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..evaluation.records import (FEATURE_SUBDIR, SCORE_SUBDIR,
                                  FeatureRecord, ScoreRecord)


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


def load_run(path: str, name: Optional[str] = None) -> RunRecord:
    """Read one run (see :func:`find_record` for what ``path`` may be)."""
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
        bucket_rule=rec.bucket_rule)
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

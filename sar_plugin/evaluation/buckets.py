"""Split classes into frequency buckets (head/body/tail, many/medium/few).

Rules (``make_buckets(..., rule=...)``):

``'cumulative'`` (default), for pixel frequencies
    Classes are sorted by descending frequency (ties: lower class index
    first). With ``p`` the normalised frequencies in that order:

    * **head** = the shortest prefix whose share sum is ``>= head_share``
      (default 0.5). Classes tied with the last head class join the head.
    * **tail** = the longest suffix whose share sum is ``<= tail_share``
      (default 0.1). A tail boundary never splits tied classes: if the
      first tail class has the frequency of the last class before the tail,
      the tied classes leave the tail.
    * **body** = the rest.

    Then, when ``K >= 3``, every bucket is made non-empty (this takes
    precedence over keeping ties together): the head is cut to at most
    ``K - 2`` classes (most frequent kept), the tail gets at least the least
    frequent class and is cut (its most frequent members go to the body) so
    that at least one class remains for the body. Example: one dominant
    class ``[0.9, 0.05, 0.03, 0.02]`` gives head ``[0]``; the last three sum
    to 0.10 <= 0.1, so the tail is cut to ``[2, 3]`` and the body is ``[1]``.
    For ``K == 2`` the head is the most frequent class and the tail the
    other (body empty); for ``K == 1`` only the head is non-empty.
    Comparisons use a tolerance of ``1e-9`` on the shares.

``'thirds'``
    Same order; ``n = K // 3`` most frequent classes are the head, the ``n``
    least frequent the tail, the remainder (``K - 2n``) the body
    (``K = 4`` -> 1/2/1, ``K = 5`` -> 1/3/1, ``K = 2`` -> 1/0/1).

``'counts'``, for numbers of training *samples* per class (classification)
    **many** = more than ``many_thr`` (default 100) samples, **few** = fewer
    than ``few_thr`` (default 20), **medium** = the rest
    (``few_thr <= n <= many_thr``). Buckets may be empty.

The input is counts or frequencies (normalised here), a ``{class: value}``
mapping, a class-frequency record ``{classes, counts, frequency}`` as
written by ``tools/analysis/class_frequency.py``, or the path of such a
JSON file. Buckets list class names (or indices when no names are known)
in descending frequency order.
"""
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

BUCKET_RULES = ('cumulative', 'thirds', 'counts')
_EPS = 1e-9

FrequencyLike = Union[str, dict, Sequence[float], np.ndarray]
#: ``class_frequency`` value that :class:`~sar_plugin.engine.LongTailEvalHook`
#: replaces by the counted training split
AUTO_FREQUENCY = 'auto'


def load_class_frequency(path: str) -> dict:
    """Read the JSON of ``tools/analysis/class_frequency.py``.

    Returns:
        dict: ``classes`` (list[str]), ``counts`` (list), ``frequency``
        (list[float], recomputed from counts when missing) and any other
        stored key.
    """
    with open(path) as f:
        try:
            record = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'class frequency file {path}: not valid JSON '
                             f'({err}); truncated? Recount it with '
                             'tools/analysis/class_frequency.py') from err
    if not isinstance(record, dict):
        raise ValueError(f'class frequency file {path}: expected a JSON '
                         f'object, got {type(record).__name__}')
    return _normalise_record(record)


def _normalise_record(record: dict) -> dict:
    record = dict(record)
    if 'counts' not in record and 'frequency' not in record:
        raise KeyError('a class-frequency record needs `counts` or '
                       f'`frequency`, got keys {sorted(record)}')
    values = record.get('counts', record.get('frequency'))
    if 'frequency' not in record:
        counts = np.asarray(values, np.float64)
        total = counts.sum()
        record['frequency'] = (counts / total).tolist() if total > 0 \
            else [float('nan')] * len(counts)
    if record.get('classes') is None:
        record['classes'] = list(range(len(values)))
    return record


def resolve_frequency(
        frequency_or_counts: FrequencyLike,
        classes: Optional[Sequence] = None
) -> Tuple[np.ndarray, List, Optional[np.ndarray]]:
    """Turn any accepted input into ``(values, classes, counts)``.

    ``values`` are the raw numbers (counts when known, else frequencies),
    ``counts`` is ``None`` when only frequencies are given. When both the
    input and ``classes`` name the classes, the input is reordered to
    ``classes`` (a class missing from the input is an error). Errors about
    a file name it.
    """
    if not isinstance(frequency_or_counts, str):
        return _resolve_frequency(frequency_or_counts, classes)
    try:
        return _resolve_frequency(frequency_or_counts, classes)
    except (KeyError, TypeError, ValueError) as err:
        message = str(err.args[0]) if err.args else str(err)
        if frequency_or_counts in message:
            raise
        raise type(err)(f'class frequency file {frequency_or_counts}: '
                        f'{message}') from err


def _resolve_frequency(frequency_or_counts, classes):
    counts = None
    names = None
    if isinstance(frequency_or_counts, str):
        frequency_or_counts = load_class_frequency(frequency_or_counts)
    if isinstance(frequency_or_counts, dict):
        if 'counts' in frequency_or_counts or \
                'frequency' in frequency_or_counts:
            record = _normalise_record(frequency_or_counts)
            names = list(record['classes'])
            if 'counts' in record:
                counts = np.asarray(record['counts'], np.float64)
                values = counts
            else:
                values = np.asarray(record['frequency'], np.float64)
        else:  # {class: value}
            names = list(frequency_or_counts)
            values = np.asarray([frequency_or_counts[n] for n in names],
                                np.float64)
            counts = values
    else:
        values = np.asarray(frequency_or_counts, np.float64).reshape(-1)
        counts = values
    if classes is not None:
        classes = list(classes)
        if names is not None and [str(n) for n in names] != \
                [str(c) for c in classes]:
            lookup = {str(n): i for i, n in enumerate(names)}
            missing = [c for c in classes if str(c) not in lookup]
            if missing:
                raise ValueError(f'class frequency has no entry for classes '
                                 f'{missing}; it names {names}')
            order = [lookup[str(c)] for c in classes]
            values = values[order]
            counts = counts[order] if counts is not None else None
        elif len(values) != len(classes):
            raise ValueError(f'{len(values)} frequencies for '
                             f'{len(classes)} classes')
        names = classes
    elif names is None:
        names = list(range(len(values)))
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError(f'frequencies must be finite and >= 0: {values}')
    return values, names, counts


def frequency_source(class_frequency: Optional[FrequencyLike],
                     dataset_meta: Optional[dict]) -> Optional[FrequencyLike]:
    """What a metric buckets by: ``class_frequency`` when given, else the
    data set's ``train_class_counts`` metainfo (class order), else ``None``.

    Raises:
        RuntimeError: ``class_frequency='auto'`` was never resolved (no
            :class:`~sar_plugin.engine.LongTailEvalHook` ran).
    """
    if isinstance(class_frequency, str) and \
            class_frequency == AUTO_FREQUENCY:
        raise RuntimeError(
            "class_frequency='auto' needs custom_hooks=[dict(type="
            "'LongTailEvalHook')] (configs/_base_/sar_runtime.py lists it; "
            'tools/test.py --longtail adds it), which counts the training '
            'split once; or give the file '
            'of tools/analysis/class_frequency.py')
    if class_frequency is not None:
        return class_frequency
    counts = (dataset_meta or {}).get('train_class_counts')
    return None if counts is None else list(counts)


def descending_order(values: Sequence[float]) -> np.ndarray:
    """Indices by descending value; ties keep the lower index first."""
    values = np.asarray(values, np.float64)
    return np.lexsort((np.arange(len(values)), -values))


def bucket_indices(frequency_or_counts: FrequencyLike,
                   classes: Optional[Sequence] = None,
                   rule: str = 'cumulative',
                   head_share: float = 0.5,
                   tail_share: float = 0.1,
                   many_thr: float = 100,
                   few_thr: float = 20) -> 'OrderedDict[str, List[int]]':
    """Like :func:`make_buckets` but returns class indices."""
    if rule not in BUCKET_RULES:
        raise ValueError(f'unknown bucket rule {rule!r}; use one of '
                         f'{BUCKET_RULES}')
    values, _, counts = resolve_frequency(frequency_or_counts, classes)
    k = len(values)
    order = descending_order(values)
    if rule == 'counts':
        if counts is None:
            raise ValueError("rule='counts' needs per-class sample counts, "
                             'not frequencies')
        if few_thr > many_thr:
            raise ValueError(f'few_thr ({few_thr}) > many_thr ({many_thr})')
        out = OrderedDict(many=[], medium=[], few=[])
        for i in order:
            n = counts[i]
            key = 'many' if n > many_thr else 'few' if n < few_thr \
                else 'medium'
            out[key].append(int(i))
        return out
    if k == 0:
        return OrderedDict(head=[], body=[], tail=[])
    if rule == 'thirds':
        n = k // 3 if k >= 3 else (1 if k == 2 else 0)
        head = order[:max(n, 1)] if k >= 1 else order[:0]
        tail = order[k - n:] if n else order[:0]
        body = order[len(head):k - n]
        return OrderedDict(head=[int(i) for i in head],
                           body=[int(i) for i in body],
                           tail=[int(i) for i in tail])
    # cumulative
    if not 0 < head_share <= 1 or not 0 <= tail_share < 1:
        raise ValueError('need 0 < head_share <= 1 and 0 <= tail_share < 1, '
                         f'got {head_share}, {tail_share}')
    total = values.sum()
    if total <= 0:
        raise ValueError('all class frequencies are zero')
    p = values[order] / total
    cum = np.cumsum(p)
    h = int(np.argmax(cum >= head_share - _EPS)) + 1
    while h < k and p[h] == p[h - 1]:  # ties join the head
        h += 1
    tail_cum = np.cumsum(p[::-1])  # share of the t least frequent
    t = int(np.sum(tail_cum <= tail_share + _EPS))
    while 0 < t < k and p[k - t] == p[k - t - 1]:  # do not split ties
        t -= 1
    if k == 1:
        h, t = 1, 0
    elif k == 2:
        h, t = 1, 1
    else:
        h = min(h, k - 2)
        t = min(max(t, 1), k - 1 - h)
    return OrderedDict(head=[int(i) for i in order[:h]],
                       body=[int(i) for i in order[h:k - t]],
                       tail=[int(i) for i in order[k - t:]])


def describe_rule(rule: str = 'cumulative', head_share: float = 0.5,
                  tail_share: float = 0.1, many_thr: float = 100,
                  few_thr: float = 20) -> str:
    """One sentence saying how a rule with these parameters buckets."""
    if rule == 'cumulative':
        return (f'classes sorted by training share; head = the most frequent '
                f'classes covering the first {100 * head_share:g}% of it, '
                f'tail = the rarest classes covering at most the last '
                f'{100 * tail_share:g}%, body = the rest (every bucket '
                'non-empty)')
    if rule == 'thirds':
        return ('classes sorted by training share, K // 3 most frequent = '
                'head, K // 3 rarest = tail, body = the rest')
    if rule == 'counts':
        return (f'training samples per class: many > {many_thr:g}, '
                f'few < {few_thr:g}, medium = the rest')
    raise ValueError(f'unknown bucket rule {rule!r}; use one of '
                     f'{BUCKET_RULES}')


def make_buckets(frequency_or_counts: FrequencyLike,
                 classes: Optional[Sequence] = None,
                 rule: str = 'cumulative',
                 **kwargs) -> 'OrderedDict[str, list]':
    """Split classes into buckets by frequency.

    Args:
        frequency_or_counts: per-class counts or frequencies (list/array in
            the order of ``classes``), a ``{class: value}`` mapping, a
            ``{classes, counts, frequency}`` record or the path of the JSON
            written by ``tools/analysis/class_frequency.py``.
        classes (Sequence, optional): Class names; taken from the input when
            it names them, else indices are used.
        rule (str): ``'cumulative'`` (``head_share=0.5``,
            ``tail_share=0.1``), ``'thirds'`` or ``'counts'``
            (``many_thr=100``, ``few_thr=20``); see the module docstring.

    Returns:
        OrderedDict: ``head``/``body``/``tail`` (or ``many``/``medium``/
        ``few``) -> class names, most frequent first.
    """
    _, names, _ = resolve_frequency(frequency_or_counts, classes)
    idx = bucket_indices(frequency_or_counts, classes, rule, **kwargs)
    return OrderedDict((key, [names[i] for i in members])
                       for key, members in idx.items())


def percent(fraction: float) -> float:
    """A fraction in percent with 2 decimals, as MMSeg reports scores."""
    return float(np.round(fraction * 100, 2))


def nanmean(values) -> float:
    """Mean of the values that are not ``nan`` (``nan`` when there are
    none), as ``IoUMetric``'s ``mIoU`` leaves out classes without pixels.

    ``values``: a 1-D numpy array or torch tensor (averaged by its own
    library, so the result is bit for bit that library's mean) or a
    sequence of floats.
    """
    if not hasattr(values, 'mean'):
        values = np.asarray(values, np.float64).reshape(-1)
    kept = values[values == values]  # nan != nan
    return float(kept.mean()) if len(kept) else float('nan')


def bucket_mean(values: Sequence[float],
                buckets: Dict[str, Sequence[int]]) -> Dict[str, float]:
    """:func:`nanmean` of ``values`` over each bucket's class indices."""
    values = np.asarray(values, np.float64)
    return {key: nanmean(values[list(members)])
            for key, members in buckets.items()}


@dataclass
class ClassBuckets:
    """The buckets a long-tail metric reports, from its frequency source.

    Attributes:
        indices: Bucket -> class indices (most frequent first).
        names: Bucket -> class names.
        rule: How they were made (:func:`describe_rule`).
        frequency: Per-class training share (``None`` when all are zero).
        counts: Raw per-class counts (``None`` when only frequencies are
            known).
    """
    indices: 'OrderedDict[str, List[int]]'
    names: 'OrderedDict[str, list]'
    rule: str
    frequency: Optional[List[float]]
    counts: Optional[List[int]]

    @classmethod
    def make(cls, source: FrequencyLike, classes: Sequence,
             rule: str = 'cumulative',
             bucket_cfg: Optional[dict] = None) -> 'ClassBuckets':
        """Bucket ``classes`` by ``source`` (see :func:`make_buckets`)."""
        bucket_cfg = dict(bucket_cfg or {})
        raw, _, counts = resolve_frequency(source, classes)
        total = raw.sum()
        return cls(
            indices=bucket_indices(source, classes, rule, **bucket_cfg),
            names=make_buckets(source, classes, rule, **bucket_cfg),
            rule=describe_rule(rule, **bucket_cfg),
            frequency=(raw / total).tolist() if total > 0 else None,
            counts=None if counts is None else [int(c) for c in counts])

    def percent_means(self, values: Sequence[float]) -> 'OrderedDict':
        """Bucket -> nan-aware mean of per-class fractions ``values``, in
        percent with 2 decimals (as the metrics report them)."""
        return OrderedDict((name, percent(value)) for name, value in
                           bucket_mean(values, self.indices).items())

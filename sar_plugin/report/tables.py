"""The report's text: headings, paragraphs and tables of the runs, as
:mod:`~sar_plugin.report.document` blocks."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..evaluation.buckets import bucket_mean
from .document import Block, Heading, Paragraph, Table
from .runs import RunRecord

FEATURE_SUMMARY = OrderedDict(
    fisher='Fisher ratio (between/within, higher = more separable)',
    silhouette='mean silhouette (-1..1, higher = better clustered)',
    intra_mean='intra-class spread (mean squared distance to class mean)',
    nearest_mean_dist_mean='distance to the nearest other class mean')
FEATURE_PER_CLASS = ('silhouette', 'fisher', 'intra')


def fmt(value: Optional[float], digits: int = 2) -> str:
    if value is None or not np.isfinite(value):
        return 'n/a'
    return f'{value:.{digits}f}'


def fmt_delta(value: Optional[float], ref: Optional[float],
              digits: int = 2) -> str:
    """``value (+delta)``; just ``value`` when either side is missing."""
    if value is None or ref is None or not (np.isfinite(value) and
                                            np.isfinite(ref)):
        return fmt(value, digits)
    return f'{value:.{digits}f} ({value - ref:+.{digits}f})'


def deltas(values: Sequence[Optional[float]], digits: int = 2) -> List[str]:
    """The first value, then each other one with its delta to the first."""
    ref = values[0]
    return [fmt(ref, digits)] + [fmt_delta(v, ref, digits)
                                 for v in values[1:]]


def bucket_scores(run: RunRecord,
                  buckets: Dict[str, List[str]]) -> Dict[str, float]:
    """The run's mean score per bucket: as recorded when the run used the
    same buckets, else the nan-aware mean of its per-class scores."""
    if run.buckets == buckets and run.bucket_scores:
        return dict(run.bucket_scores)
    index = {c: i for i, c in enumerate(run.classes)}
    return bucket_mean(run.scores, {name: [index[m] for m in members]
                                    for name, members in buckets.items()})


def _feature_value(run: RunRecord, key: str,
                   bucket: Optional[str] = None) -> Optional[float]:
    if run.features is None:
        return None
    if bucket is None:
        return run.features.summary.get(key)
    return ((run.features.bucket_stats or {}).get(bucket) or {}).get(key)


class ReportTables:
    """The tables of runs compared side by side (the first is the
    reference).

    Args:
        runs: The runs (comparable, uniquely named).
        order: Class indices, most frequent first.
        share: Per-class share (class order).
        basis: ``'train'`` or ``'eval'``: what ``share`` is of.
    """

    def __init__(self, runs: List[RunRecord], order: np.ndarray,
                 share: np.ndarray, basis: str) -> None:
        self.runs = runs
        self.order = order
        self.share = share
        self.basis = basis
        self.ref = runs[0]
        self.names = [r.name for r in runs]
        self.buckets = next((r.buckets for r in runs if r.buckets), None)
        self.per_bucket = {r.name: bucket_scores(r, self.buckets)
                           for r in runs} if self.buckets else {}
        self.mean_name = 'mIoU' if self.ref.score_name == 'IoU' else \
            'mean accuracy'
        self.has_features = any(r.features is not None for r in runs)

    def blocks(self, title: Optional[str]) -> List[Block]:
        """Title, introduction and every table."""
        ref = self.ref
        training = 'training' if self.basis == 'train' else \
            'evaluated (no training frequency recorded)'
        out: List[Block] = [
            Heading(title or
                    f'Long-tail report: {" vs ".join(self.names)}', 1),
            Paragraph(
                f'{ref.task.capitalize()}, per-class {ref.score_name}. '
                'Deltas in parentheses are against '
                f'**{ref.name}**. Classes are ordered by their share of the '
                f'{training} set, most frequent first.'),
            self.run_table()]
        out += [Heading('Summary'), self.summary()]
        if self.buckets:
            out += [Heading('Buckets'), Paragraph(
                f'Rule: {ref.bucket_rule or "as recorded by the metric"}.'),
                self.bucket_table()]
        out += [Heading(f'Per class {ref.score_name} (%)'), self.per_class()]
        if self.has_features:
            out += [Heading('Feature compactness per class'), Paragraph(
                'Pre-classifier features of the evaluated set, '
                'class-balanced sample (FeatureCompactnessMetric). ' +
                '; '.join(f'**{k}**: {v}'
                          for k, v in FEATURE_SUMMARY.items()) + '.'),
                self.features()]
        return out

    def run_table(self) -> Table:
        """Each run, when it was evaluated (iteration / epoch) and where
        that comes from (the record, or the checkpoint's meta or name)."""
        rows = []
        for r in self.runs:
            ev = r.evaluated
            if ev.source is None and r.iteration is not None:
                at, source = f'iter {r.iteration}', 'record'
            else:
                at, source = ev.describe(), ev.source or 'unknown'
            if ev.checkpoint:
                source += f' of `{ev.checkpoint}`'
            if ev.note and ev.source != 'checkpoint meta':
                source += f' ({ev.note})'
            source = ' '.join(source.split()).replace('|', '/')
            rows.append([r.name, at, source, f'`{r.source}`'])
        return Table(['run', 'evaluated at', 'from', 'record'], rows)

    def summary(self) -> Table:
        keys = OrderedDict.fromkeys(k for r in self.runs for k in r.summary)
        rows = [[f'**{k}**'] + deltas([r.summary.get(k) for r in self.runs])
                for k in keys]
        for b in self.buckets or ():
            rows.append([f'{self.mean_name} {b}'] + deltas(
                [self.per_bucket[n][b] for n in self.names]))
        if self.has_features:
            for key in FEATURE_SUMMARY:
                rows.append([f'features: {key}'] + deltas(
                    [_feature_value(r, key) for r in self.runs], 3))
            for b in self.buckets or ():
                rows.append([f'features: silhouette {b}'] + deltas(
                    [_feature_value(r, 'silhouette', b) for r in self.runs],
                    3))
        return Table(['metric'] + self.names, rows)

    def bucket_table(self) -> Table:
        index = {c: i for i, c in enumerate(self.ref.classes)}
        rows = []
        for b, members in self.buckets.items():
            share = sum(self.share[index[m]] for m in members)
            rows.append([f'**{b}**', ', '.join(members), f'{100 * share:.2f}']
                        + deltas([self.per_bucket[n][b] for n in self.names]))
        return Table(['bucket', 'classes', 'share %'] +
                     [f'{n} {self.mean_name}' for n in self.names], rows)

    def per_class(self) -> Table:
        bucket_of = {c: b for b, ms in (self.buckets or {}).items()
                     for c in ms}
        rows = []
        for i in self.order:
            c = self.ref.classes[i]
            rows.append([c, f'{100 * self.share[i]:.3g}',
                         bucket_of.get(c, '')] +
                        deltas([r.scores[i] for r in self.runs]))
        return Table(['class', 'share %', 'bucket'] + self.names, rows)

    def features(self) -> Table:
        rows = []
        for i in self.order:
            cells = [self.ref.classes[i]]
            for key in FEATURE_PER_CLASS:
                cells += deltas([
                    None if r.features is None or key not in
                    r.features.per_class else r.features.per_class[key][i]
                    for r in self.runs], 3)
            rows.append(cells)
        return Table(['class'] + [f'{key} {n}' for key in FEATURE_PER_CLASS
                                  for n in self.names], rows)

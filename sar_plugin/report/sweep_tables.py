"""The tables of the sweep report for one split: methods' mean ± std over
seeds and the paired comparison against the reference method."""
from collections import OrderedDict
from typing import Dict, List, Mapping, Sequence

import numpy as np

from .document import Block, Heading, Paragraph, Table
from .stats import (Paired, SeedValues, Stat, describe, fmt_interval,
                    fmt_paired, fmt_stat, paired, signed)
from .tables import FEATURE_SUMMARY

#: the groups of numbers of a run entry, in report order
GROUPS = ('summary', 'buckets', 'per_class', 'features')
#: digits shown per group
DIGITS = dict(summary=2, buckets=2, per_class=2, features=3)


#: method -> group -> key -> {seed: value}
Collected = Dict[str, Dict[str, 'OrderedDict[str, SeedValues]']]


def collect(runs: Sequence[Mapping], split: str) -> Collected:
    """``method -> group -> key -> {seed: value}`` of the ``'ok'`` entries
    of ``split`` (methods and keys in order of appearance)."""
    out: Collected = OrderedDict()
    for run in runs:
        if run['split'] != split or run.get('status') != 'ok':
            continue
        groups = out.setdefault(run['method'], OrderedDict(
            (g, OrderedDict()) for g in GROUPS))
        for group in GROUPS:
            for key, value in (run.get(group) or {}).items():
                groups[group].setdefault(key, {})[run['seed']] = value
    return out

def aggregate(values: Collected) -> Dict[str, Dict[str, Dict[str, Stat]]]:
    """:func:`describe` of every method, group and key."""
    return OrderedDict(
        (m, OrderedDict((g, OrderedDict((k, describe(v))
                                        for k, v in keys.items()))
                        for g, keys in groups.items()))
        for m, groups in values.items())

def compare(values: Collected, reference: str, confidence: float = 0.95,
            resamples: int = 0) -> Dict[str, Dict[str, Dict[str, Paired]]]:
    """:func:`paired` comparison of every other method with ``reference``
    (empty when ``reference`` has no result)."""
    ref = values.get(reference)
    if ref is None:
        return OrderedDict()
    return OrderedDict(
        (m, OrderedDict((g, OrderedDict(
            (k, paired(ref[g].get(k, {}), v, confidence, resamples))
            for k, v in keys.items())) for g, keys in groups.items()))
        for m, groups in values.items() if m != reference)

def _class_meta(runs: Sequence[Mapping]) -> dict:
    """Classes, training share and bucket membership of the entries (which
    must agree on their classes)."""
    if not runs:
        return dict(classes=[], share=None, buckets={}, bucket_of={})
    classes = list(runs[0].get('classes') or runs[0]['per_class'])
    for run in runs[1:]:
        if list(run.get('classes') or run['per_class']) != classes:
            raise ValueError(
                f'{run["method"]} seed {run["seed"]} ({run["split"]}) has '
                f'other classes than {runs[0]["method"]} seed '
                f'{runs[0]["seed"]}: they cannot be compared')
    share = next((r['frequency'] for r in runs if r.get('frequency')), None)
    members = next((r['bucket_members'] for r in runs
                    if r.get('bucket_members')), None) or {}
    return dict(classes=classes, share=share, buckets=members, bucket_of={
        c: b for b, ms in members.items() for c in ms})


class SweepTables:
    """The sweep report's tables for one split.

    Args:
        runs: ``results.json`` run entries (all splits).
        split: The split shown.
        methods: Methods in order (the first is the reference).
        confidence: Level of the intervals.
        resamples: Bootstrap resamples (0: no bootstrap column).
    """

    def __init__(self, runs: Sequence[Mapping], split: str,
                 methods: Sequence[str], confidence: float = 0.95,
                 resamples: int = 0) -> None:
        self.split = split
        self.values = collect(runs, split)
        self.methods = [m for m in methods if m in self.values]
        self.reference = methods[0]
        self.stats = aggregate(self.values)
        self.paired = compare(self.values, self.reference, confidence,
                              resamples)
        self.confidence = confidence
        self.resamples = resamples
        ok = [r for r in runs if r['split'] == split and
              r.get('status') == 'ok']
        self.meta = _class_meta(ok)
        self.score = ok[0].get('score', 'IoU') if ok else 'IoU'

    def keys(self, group: str) -> List[str]:
        """The keys of ``group`` over all methods, in order."""
        return list(OrderedDict.fromkeys(
            k for m in self.methods for k in self.stats[m][group]))

    def _label(self, group: str, key: str) -> str:
        mean_name = 'mIoU' if self.score == 'IoU' else f'mean {self.score}'
        return dict(buckets=f'{mean_name} {key}',
                    features=f'features: {key}').get(group, key)

    def method_table(self, groups: Sequence[str]) -> Table:
        """Method rows, ``mean ± std (n)`` cells."""
        cols = [(g, k) for g in groups for k in self.keys(g)]
        rows = [[f'**{m}**'] + [
            fmt_stat(self.stats[m][g].get(k, describe({})), DIGITS[g])
            for g, k in cols] for m in self.methods]
        return Table(['method'] + [self._label(g, k) for g, k in cols], rows)

    def paired_table(self, groups: Sequence[str]) -> Table:
        """Per (method, metric): the per-seed differences, their mean and
        intervals."""
        level = f'{100 * self.confidence:g}%'
        header = ['method', 'metric', 'per-seed differences',
                  'mean difference', f'{level} t interval']
        if self.resamples:
            header.append(f'{level} bootstrap interval')
        header += ['better in', 'n']
        rows = []
        for m, by_group in self.paired.items():
            for g in groups:
                for k, p in by_group[g].items():
                    d = DIGITS[g]
                    row = [f'**{m}**', self._label(g, k), ', '.join(
                        f'seed {s}: {signed(v, d)}'
                        for s, v in zip(p.seeds, p.diffs)) or 'none',
                        signed(p.mean, d),
                        fmt_interval(p.t_low, p.t_high, p.n, d)]
                    if self.resamples:
                        row.append(fmt_interval(p.boot_low, p.boot_high,
                                                p.n, d))
                    rows.append(row + [f'{p.better}/{p.n}', str(p.n)])
        return Table(header, rows)

    def per_class_table(self) -> Table:
        """Class rows (most frequent first), a ``mean ± std (n)`` column
        per method."""
        rows = []
        for c in self.class_order():
            rows.append([c, self._share(c), self.meta['bucket_of'].get(c, '')]
                        + [fmt_stat(self.stats[m]['per_class'].get(
                            c, describe({}))) for m in self.methods])
        return Table(['class', 'share %', 'bucket'] + self.methods, rows)

    def per_class_paired_table(self) -> Table:
        """Class rows: mean difference, t interval and n per method."""
        rows = [[c] + [fmt_paired(self.paired[m]['per_class'][c])
                       if c in self.paired[m]['per_class'] else 'n/a (0)'
                       for m in self.paired] for c in self.class_order()]
        return Table(['class'] + [f'{m} − {self.reference}'
                                  for m in self.paired], rows)

    def class_order(self) -> List[str]:
        """Classes by descending share (as recorded), else as listed."""
        classes, share = self.meta['classes'], self.meta['share']
        if share is None:
            return list(classes)
        return [classes[i] for i in np.argsort(-np.asarray(share),
                                               kind='stable')]

    def _share(self, cls: str) -> str:
        share = self.meta['share']
        if share is None:
            return 'n/a'
        return f'{100 * share[self.meta["classes"].index(cls)]:.3g}'

    def blocks(self) -> List[Block]:
        """The split's section: summary, paired comparison, per class,
        features."""
        s = f'`{self.split}`'
        out: List[Block] = [Heading(f'Split {s}', 2)]
        if not self.methods:
            return out + [Paragraph(f'No evaluation on {s} succeeded.')]
        out += [Heading(f'Summary ({s})', 3),
                self.method_table(('summary', 'buckets'))]
        if self.paired:
            out += [Heading(f'Paired differences against '
                            f'{self.reference} ({s})', 3), Paragraph(
                f'Per seed, method minus **{self.reference}**, over the '
                'seeds both have; the t interval uses df = n − 1 and is '
                'undefined for n = 1. "better in" counts the seeds with a '
                'positive difference.'),
                self.paired_table(('summary', 'buckets', 'features'))]
        elif self.reference not in self.methods:
            out.append(Paragraph(f'No paired comparison: the reference '
                                 f'{self.reference} has no result on {s}.'))
        out += [Heading(f'Per class {self.score} ({s})', 3),
                self.per_class_table()]
        if self.paired:
            out += [Heading(f'Per class difference against '
                            f'{self.reference} ({s})', 3), Paragraph(
                'Mean difference [t interval] (n); the intervals are not '
                'adjusted for the number of classes compared.'),
                self.per_class_paired_table()]
        if self.keys('features'):
            keys = self.keys('features')
            out += [Heading(f'Feature compactness ({s})', 3), Paragraph(
                'Pre-classifier features of the evaluated set '
                '(FeatureCompactnessMetric). ' + '; '.join(
                    f'**{k}**: {v}' for k, v in FEATURE_SUMMARY.items()
                    if k in keys) + '.'), self.method_table(('features',))]
        return out

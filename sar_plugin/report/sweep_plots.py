"""The sweep report's pictures: means over seeds with their spread.

Bars are means over seeds, error bars one sample standard deviation
(``ddof=1``; none where ``n < 2``), black dots the single seeds. The paired
plot shows each seed's difference to the reference and the mean with its
t interval. Same conventions as :mod:`~sar_plugin.report.plots` (each
figure on its own Agg canvas, no pyplot, matplotlib's global state left
alone; sizes from :func:`~sar_plugin.report.plots.figure_size`).
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .document import Image
from .plots import (_bucket_lines, _colours, _figure, _save, _tick_labels,
                    figure_size)
from .stats import Paired, Stat, describe, paired
from .sweep_tables import SweepTables

Key = Tuple[str, str]  # (group, key)


def _headline(tables: SweepTables) -> List[Key]:
    """The mean score and the buckets: what the summary plots show."""
    summary = tables.keys('summary')
    first = ['mIoU'] if 'mIoU' in summary else summary[:1]
    return [('summary', k) for k in first] + \
        [('buckets', k) for k in tables.keys('buckets')]


def _grouped_bars(ax, stats: Dict[str, Sequence[Stat]],
                  labels: Sequence[str]) -> None:
    """Bars (mean), error bars (std) and dots (seeds) per method and key."""
    r = len(stats)
    width = 0.8 / r
    x = np.arange(len(labels))
    for j, ((method, row), colour) in enumerate(zip(stats.items(),
                                                    _colours(r))):
        xs = x + (j - (r - 1) / 2) * width
        n = max((s.n for s in row), default=0)
        ax.bar(xs, [s.mean for s in row], width, color=colour, alpha=0.85,
               yerr=[s.std for s in row], capsize=3,
               error_kw=dict(lw=1), label=f'{method} (n ≤ {n})')
        for xi, s in zip(xs, row):
            ax.scatter([xi] * s.n, s.values, s=9, color='black', zorder=3)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8, loc='upper right')


def _stats(tables: SweepTables, keys: Sequence[Key]) -> Dict:
    return OrderedDict((m, [tables.stats[m][g].get(k, describe({}))
                            for g, k in keys]) for m in tables.methods)


def summary_bars(tables: SweepTables, path: str) -> str:
    """Mean score and bucket means per method, with the spread."""
    keys = _headline(tables)
    fig, ax = _figure(figure_size('per_class', len(keys),
                                  len(tables.methods)))
    _grouped_bars(ax, _stats(tables, keys), [k for _, k in keys])
    ax.set_ylabel(f'{tables.score} (%), mean ± std over seeds')
    ax.set_title(f'split {tables.split}', fontsize=10)
    return _save(fig, path)


def per_class_bars(tables: SweepTables, path: str) -> str:
    """Per-class score per method, classes by frequency, with the
    spread."""
    meta = tables.meta
    names = tables.class_order()
    classes = meta['classes']
    order = np.array([classes.index(c) for c in names], np.int64)
    fig, ax = _figure(figure_size('per_class', len(names),
                                  len(tables.methods)))
    _grouped_bars(ax, _stats(tables, [('per_class', c) for c in names]),
                  names)
    if meta['share'] is not None:
        ax.set_xticks(np.arange(len(names)), _tick_labels(
            classes, np.asarray(meta['share']), order), fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f'{tables.score} (%), mean ± std over seeds')
    ax.set_xlabel('class (training share), most frequent first')
    _bucket_lines(ax, order, classes, meta['buckets'])
    return _save(fig, path)


def paired_intervals(tables: SweepTables, path: str) -> str:
    """Per method: each seed's difference to the reference (dots) and the
    mean difference with its t interval (none where ``n < 2``)."""
    keys = _headline(tables)
    others = list(tables.paired)
    fig, ax = _figure(figure_size('delta', len(keys), len(others) + 1))
    width = 0.8 / len(others)
    x = np.arange(len(keys))
    empty = paired({}, {})
    for j, (method, colour) in enumerate(zip(others, _colours(
            len(tables.methods))[1:])):
        xs = x + (j - (len(others) - 1) / 2) * width
        rows: List[Paired] = [tables.paired[method][g].get(k, empty)
                                for g, k in keys]
        means = np.array([p.mean for p in rows])
        err = np.array([[p.mean - p.t_low for p in rows],
                        [p.t_high - p.mean for p in rows]])
        ax.errorbar(xs, means, yerr=err, fmt='D', color=colour, capsize=4,
                    label=f'{method} − {tables.reference}')
        for xi, p in zip(xs, rows):
            ax.scatter([xi] * p.n, p.diffs, s=9, color='black', zorder=3)
    ax.axhline(0, color='black', lw=0.8)
    ax.set_xticks(x, [k for _, k in keys], fontsize=8)
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.set_ylabel(f'difference (points), '
                  f'{100 * tables.confidence:g}% t interval')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def draw_split(tables: SweepTables,
               out_dir: str) -> 'OrderedDict[str, Image]':
    """Every plot of one split, drawn into ``out_dir``.

    Returns:
        OrderedDict: ``summary``, ``per_class`` and (with a reference
        result and another method) ``paired`` -> the captioned picture.
    """
    split, score = tables.split, tables.score
    spread = ('bars: mean over seeds; error bars: ±1 sample std (none where '
              'n < 2); dots: single seeds')
    out = OrderedDict()
    out['summary'] = Image(
        summary_bars(tables, osp.join(out_dir, f'{split}_summary.png')),
        f'{split}: m{score} and bucket means per method ({spread})')
    out['per_class'] = Image(
        per_class_bars(tables, osp.join(out_dir, f'{split}_per_class.png')),
        f'{split}: per-class {score} per method, classes by frequency '
        f'({spread})')
    if tables.paired:
        out['paired'] = Image(
            paired_intervals(tables,
                             osp.join(out_dir, f'{split}_paired.png')),
            f'{split}: difference to {tables.reference} per seed (dots), '
            f'mean with its {100 * tables.confidence:g}% t interval '
            '(none where n < 2)')
    return out

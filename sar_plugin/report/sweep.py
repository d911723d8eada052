"""Seed sweeps (``tools/sweep.py``): statistics over seeds, paired
comparisons, and the sweep report.

The input is the sweep's ``results.json``::

    {"sweep": {"methods": {name: config, ...},   # the first: reference
               "seeds": [...], "splits": [...], "cfg_options": [...],
               "split_options": {split: [...]}, "work_dir": ..., "written"},
     "runs": [entry, ...]}         # one per (method, seed, split)

    entry = {"method", "seed", "split", "config", "work_dir",
             "checkpoint",                        # the final one evaluated
             "train_seconds",                     # sessions since scratch
             "status": "ok" | "failed" | "missing",
             "error",                             # when not ok: why, log
             # when ok:
             "eval_seconds", "record",            # the ScoreRecord read
             "score": "IoU",
             "summary": {"mIoU", "mAcc", "aAcc"},
             "buckets": {bucket: mean score},
             "per_class": {class: score},
             "features": {"fisher", "silhouette", "intra_mean",
                          "nearest_mean_dist_mean",
                          "mean_pairwise_mean_dist"} | null,
             "classes", "frequency",              # training share | null
             "bucket_members": {bucket: [class]}, "bucket_rule"}

Scores are percent; ``null`` stands for a value that was not finite. Only
``'ok'`` entries are used (a failed or missing one is never averaged). The
numbers of an entry are grouped (:data:`~.sweep_tables.GROUPS`): ``summary``, ``buckets``,
``per_class`` and ``features``.

The statistics (mean ± std with their ``n``, paired differences and
intervals) are in :mod:`sar_plugin.report.stats`.
"""
import json
import os
import os.path as osp
from collections import OrderedDict
from dataclasses import asdict
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from .document import Block, Heading, Paragraph, Table, write_documents
from .runs import load_run
from .stats import describe, fmt_stat
from .sweep_tables import SweepTables




def record_numbers(record: str) -> 'OrderedDict[str, object]':
    """The numbers of one evaluation, as a ``results.json`` entry holds
    them (the score record, and the feature record of the same evaluation
    if any; ``None`` where a value is not finite).

    Args:
        record: A score record, or a dir :func:`~.runs.find_record`
            accepts.
    """
    rec = load_run(record)

    def clean(mapping):
        return None if mapping is None else OrderedDict(
            (k, finite_or_none(float(v))) for k, v in mapping.items())

    return OrderedDict(
        score=rec.score_name, summary=clean(rec.summary),
        buckets=clean(rec.bucket_scores),
        per_class=clean(OrderedDict(zip(rec.classes, rec.scores))),
        features=clean(None if rec.features is None else
                       rec.features.summary),
        classes=rec.classes,
        frequency=None if rec.frequency is None else
        [float(f) for f in rec.frequency],
        bucket_members=rec.buckets, bucket_rule=rec.bucket_rule)


def finite_or_none(value):
    """Floats that are not finite as ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------- report


def _stat_json(stat) -> dict:
    """A :class:`Stat` / :class:`Paired` as JSON, with its ``n``."""
    out = OrderedDict()
    for key, value in asdict(stat).items():
        out[key] = [finite_or_none(v) for v in value] \
            if isinstance(value, tuple) else finite_or_none(value)
    out['n'] = stat.n
    return out


def report_numbers(tables: Sequence[SweepTables]) -> dict:
    """The aggregated numbers of every split, for ``report.json``."""
    return OrderedDict((t.split, OrderedDict(
        stats={m: {g: {k: _stat_json(s) for k, s in keys.items()}
                   for g, keys in groups.items()}
               for m, groups in t.stats.items()},
        paired={m: {g: {k: _stat_json(p) for k, p in keys.items()}
                    for g, keys in groups.items()}
                for m, groups in t.paired.items()}))
        for t in tables)


def runs_table(results: Mapping) -> Table:
    """Per method: config, seeds evaluated per split, failures, time."""
    sweep, runs = results['sweep'], results['runs']
    rows = []
    for method, config in sweep['methods'].items():
        mine = [r for r in runs if r['method'] == method]
        done = '; '.join(
            f'{split}: ' + (', '.join(str(r['seed']) for r in mine
                                      if r['split'] == split and
                                      r['status'] == 'ok') or 'none')
            for split in sweep['splits'])
        bad = '; '.join(f'seed {r["seed"]} {r["split"]}: {r["status"]}'
                        for r in mine if r['status'] != 'ok') or 'none'
        train = describe({r['seed']: r.get('train_seconds') for r in mine})
        rows.append([f'**{method}**', f'`{config}`', done, bad,
                     fmt_stat(train, 0)])
    return Table(['method', 'config', 'seeds evaluated', 'not evaluated',
                  'train time s'], rows)


def make_sweep_report(results: Mapping, out_dir: str,
                      confidence: float = 0.95, resamples: int = 0,
                      title: Optional[str] = None) -> Dict[str, str]:
    """Write ``report.md``, ``report.html``, ``report.json`` (the
    aggregated numbers) and the plots of a sweep's ``results.json`` to
    ``out_dir``.

    Args:
        results: The parsed ``results.json`` (``sweep`` with ``methods``
            (name -> config, the first is the reference), ``seeds``,
            ``splits``, ``cfg_options``; and ``runs``).
        out_dir: Output folder (created).
        confidence: Level of the intervals.
        resamples: Bootstrap resamples (0: t interval only).
        title: Report title.

    Returns:
        dict: ``markdown``, ``html``, ``json`` and each plot's path.
    """
    from . import sweep_plots
    sweep = results['sweep']
    methods = list(sweep['methods'])
    os.makedirs(out_dir, exist_ok=True)
    tables = [SweepTables(results['runs'], split, methods, confidence,
                          resamples) for split in sweep['splits']]
    blocks = _intro(results, title, confidence)
    images = OrderedDict()
    for t in tables:
        blocks += t.blocks()
        if t.methods:
            drawn = sweep_plots.draw_split(t, out_dir)
            blocks += [Heading(f'Plots (`{t.split}`)', 3)] + \
                list(drawn.values())
            images.update((f'{t.split}_{k}', v.path) for k, v in
                          drawn.items())
    md_path, html_path = write_documents(blocks, out_dir, 'report')
    json_path = osp.join(out_dir, 'report.json')
    with open(json_path, 'w') as f:
        json.dump(report_numbers(tables), f, indent=2)
    return OrderedDict(markdown=md_path, html=html_path, json=json_path,
                       **images)


def _intro(results: Mapping, title: Optional[str],
           confidence: float) -> List[Block]:
    sweep = results['sweep']
    methods = list(sweep['methods'])
    options = ' '.join(sweep.get('cfg_options') or []) or 'none'
    return [
        Heading(title or f'Seed sweep: {" vs ".join(methods)}', 1),
        Paragraph(
            f'Every method trained once per seed '
            f'({", ".join(map(str, sweep["seeds"]))}; `randomness.seed`), '
            'the final checkpoint of each run (not the best on validation) '
            'evaluated on each split '
            f'({", ".join(f"`{s}`" for s in sweep["splits"])}). Cells are '
            '**mean ± sample standard deviation (ddof = 1) over seeds (n)**, '
            'n being the number of seeds with a finite value; a failed or '
            'missing run lowers n and is listed below, never filled in. '
            f'Comparisons against **{methods[0]}** are paired by seed, with '
            f'{100 * confidence:g}% intervals.'),
        Paragraph(f'`--cfg-options`: `{options}`'),
        Heading('Runs'), runs_table(results)]

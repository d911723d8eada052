"""Build the long-tail report of one or more runs (see
``tools/longtail_report.py``)."""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import plots
from .document import Heading, Image, Paragraph, Table, to_html, to_markdown
from .runs import RunRecord, check_comparable, class_order, load_run

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


def bucket_scores(run: RunRecord,
                  buckets: Dict[str, List[str]]) -> Dict[str, float]:
    """The run's mean score per bucket: as recorded when the run used the
    same buckets, else the nan-aware mean of its per-class scores."""
    if run.buckets == buckets and run.bucket_scores:
        return dict(run.bucket_scores)
    index = {c: i for i, c in enumerate(run.classes)}
    out = {}
    for name, members in buckets.items():
        vals = run.scores[[index[m] for m in members]]
        vals = vals[np.isfinite(vals)]
        out[name] = float(vals.mean()) if vals.size else float('nan')
    return out


def _row(label: str, values: Sequence[Optional[float]],
         digits: int = 2) -> List[str]:
    ref = values[0]
    return [label, fmt(ref, digits)] + [fmt_delta(v, ref, digits)
                                        for v in values[1:]]


def _feature_value(run: RunRecord, key: str,
                   bucket: Optional[str] = None) -> Optional[float]:
    if run.features is None:
        return None
    if bucket is None:
        return run.features.get('summary', {}).get(key)
    return ((run.features.get('bucket_stats') or {}).get(bucket) or
            {}).get(key)


def make_report(paths: Sequence[str], out_dir: str,
                names: Optional[Sequence[str]] = None,
                title: Optional[str] = None,
                use_tsne: bool = True) -> Dict[str, str]:
    """Read the runs, draw the plots and write ``report.md``,
    ``report.html`` and ``report.json`` (the tables' numbers) to
    ``out_dir``.

    Args:
        paths: Run dirs (or log dirs / record files, see
            :func:`~sar_plugin.report.runs.find_record`). The first run is
            the reference every delta is taken against.
        out_dir: Output folder (created).
        names: Labels of the runs (default: their dir names).
        title: Report title.
        use_tsne: Add a t-SNE panel to the projections (needs
            scikit-learn).

    Returns:
        dict: ``markdown``, ``html``, ``json`` and each plot's path.
    """
    if names is not None and len(names) != len(paths):
        raise ValueError(f'--names: {len(names)} names for {len(paths)} runs')
    runs = [load_run(p, None if names is None else names[i])
            for i, p in enumerate(paths)]
    seen = set()
    for run in runs:  # unique labels
        base, j = run.name, 1
        while run.name in seen:
            j += 1
            run.name = f'{base}-{j}'
        seen.add(run.name)
    check_comparable(runs)
    os.makedirs(out_dir, exist_ok=True)
    ref = runs[0]
    score = ref.score_name
    task = ref.task
    order, share, basis = class_order(runs)
    buckets = next((r.buckets for r in runs if r.buckets), None)
    bucket_of = {c: b for b, ms in (buckets or {}).items() for c in ms}
    mean_name = 'mIoU' if score == 'IoU' else 'mean accuracy'

    # --- plots ------------------------------------------------------------
    files = OrderedDict()
    files['per_class'] = plots.per_class_bars(
        runs, order, share, osp.join(out_dir, f'per_class_{score}.png'))
    if len(runs) > 1:
        files['delta'] = plots.delta_bars(
            runs, order, share, osp.join(out_dir, f'delta_{score}.png'))
    files['vs_frequency'] = plots.score_vs_frequency(
        runs, share, basis, osp.join(out_dir, f'{score}_vs_frequency.png'))
    for i, run in enumerate(runs):
        if run.feature_sample is not None and len(run.feature_sample[1]):
            files[f'projection_{i}'] = plots.projection(
                run, osp.join(out_dir, f'features_{i}_{_slug(run.name)}.png'),
                use_tsne)

    # --- tables -----------------------------------------------------------
    names_row = [r.name for r in runs]
    blocks: list = [Heading(title or f'Long-tail report: '
                            f'{" vs ".join(names_row)}', 1)]
    blocks.append(Paragraph(
        f'{task.capitalize()}, per-class {score}. Deltas in parentheses are '
        f'against **{ref.name}**. Classes are ordered by their share of the '
        f'{"training" if basis == "train" else "evaluated (no training frequency recorded)"} '
        'set, most frequent first.'))
    blocks.append(Table(['run', 'iteration', 'record'], [
        [r.name, str(r.iteration) if r.iteration is not None else 'n/a',
         f'`{r.source}`'] for r in runs]))

    summary_keys = list(OrderedDict.fromkeys(
        k for r in runs for k in r.summary))
    rows = [_row(f'**{k}**', [r.summary.get(k) for r in runs])
            for k in summary_keys]
    per_bucket = {}
    if buckets:
        per_bucket = {r.name: bucket_scores(r, buckets) for r in runs}
        rows += [_row(f'{mean_name} {b}', [per_bucket[r.name][b]
                                           for r in runs])
                 for b in buckets]
    if any(r.features is not None for r in runs):
        for key in FEATURE_SUMMARY:
            rows.append(_row(f'features: {key}',
                             [_feature_value(r, key) for r in runs], 3))
        if buckets:
            for b in buckets:
                rows.append(_row(f'features: silhouette {b}', [
                    _feature_value(r, 'silhouette', b) for r in runs], 3))
    blocks += [Heading('Summary'), Table(['metric'] + names_row, rows)]

    if buckets:
        blocks.append(Heading('Buckets'))
        blocks.append(Paragraph(
            f'Rule: {ref.bucket_rule or "as recorded by the metric"}.'))
        index = {c: i for i, c in enumerate(ref.classes)}
        brow = []
        for b, members in buckets.items():
            sh = sum(share[index[m]] for m in members)
            brow.append(_row(f'**{b}**', [per_bucket[r.name][b]
                                          for r in runs])[:1] +
                        [', '.join(members), f'{100 * sh:.2f}'] +
                        _row('', [per_bucket[r.name][b] for r in runs])[1:])
        blocks.append(Table(['bucket', 'classes', 'share %'] +
                            [f'{n} {mean_name}' for n in names_row], brow))

    crow = []
    for i in order:
        c = ref.classes[i]
        crow.append([c, f'{100 * share[i]:.3g}', bucket_of.get(c, '')] +
                    _row('', [r.scores[i] for r in runs])[1:])
    blocks += [Heading(f'Per class {score} (%)'),
               Table(['class', 'share %', 'bucket'] + names_row, crow)]

    if any(r.features is not None for r in runs):
        frow = []
        for i in order:
            c = ref.classes[i]
            cells = [c]
            for key in FEATURE_PER_CLASS:
                vals = [None if r.features is None or r.features.get(key)
                        is None else r.features[key][i] for r in runs]
                cells += _row('', vals, 3)[1:]
            frow.append(cells)
        header = ['class'] + [f'{key} {n}' for key in FEATURE_PER_CLASS
                              for n in names_row]
        blocks += [Heading('Feature compactness per class'), Paragraph(
            'Pre-classifier features of the evaluated set, class-balanced '
            'sample (FeatureCompactnessMetric). ' + '; '.join(
                f'**{k}**: {v}' for k, v in FEATURE_SUMMARY.items()) + '.'),
            Table(header, frow)]

    blocks.append(Heading('Plots'))
    captions = dict(
        per_class=f'Per-class {score}, classes by frequency, runs side by '
        'side',
        delta=f'Per-class {score} change against {ref.name}',
        vs_frequency=f'{score} against class frequency (log scale), with a '
        'least-squares trend per run')
    for key, path in files.items():
        caption = captions.get(key)
        if caption is None:
            run = runs[int(key.split('_')[1])]
            caption = (f'{run.name}: sampled pre-classifier features in 2-D, '
                       'coloured by class')
        blocks.append(Image(path, caption))

    md_path = osp.join(out_dir, 'report.md')
    html_path = osp.join(out_dir, 'report.html')
    with open(md_path, 'w') as f:
        f.write(to_markdown(blocks, out_dir))
    with open(html_path, 'w') as f:
        f.write(to_html(blocks, blocks[0].text))
    numbers = dict(
        runs=names_row, task=task, score=score, basis=basis,
        classes=[ref.classes[i] for i in order],
        share=[float(share[i]) for i in order],
        scores={r.name: [_none(r.scores[i]) for i in order] for r in runs},
        summary={r.name: {k: _none(v) for k, v in r.summary.items()}
                 for r in runs},
        buckets=buckets,
        bucket_scores={n: {k: _none(v) for k, v in s.items()}
                       for n, s in per_bucket.items()} or None)
    json_path = osp.join(out_dir, 'report.json')
    with open(json_path, 'w') as f:
        json.dump(numbers, f, indent=2)
    return OrderedDict(markdown=md_path, html=html_path, json=json_path,
                       **files)


def _none(value) -> Optional[float]:
    return None if value is None or not np.isfinite(value) else float(value)


def _slug(name: str) -> str:
    return ''.join(ch if ch.isalnum() or ch in '-_' else '_' for ch in name)

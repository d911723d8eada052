"""The family table of a seed sweep: one row per method, mean ± std over
seeds, and the paired difference of its mIoU (or top-1) to the reference.

    python tools/analysis/family_table.py RESULTS_JSON [--split test] \\
        [--reference ce] [--methods NAME[=LABEL] ...] [--confidence 0.95]

``RESULTS_JSON`` is the ``results.json`` of ``tools/sweep.py``. Printed as
Markdown (the README's family tables are this output):

| method | mIoU | head | body | tail | Fisher ratio | mIoU − CE [95% t] | better in |

Cells: mean ± sample std (ddof = 1) over the seeds with a value; the
paired column is the mean of the per-seed differences with its t interval
(df = n − 1) and the number of seeds where the method is above the
reference. The headline metric is the record's first summary key (mIoU
for segmentation, top-1 accuracy for classification), the buckets are the
record's head/body/tail (or many/medium/few), the Fisher ratio (between-
over within-class scatter of the sampled features, scale-free) is the
compactness column. A method with a missing or failed run is reported
with the seeds it has (``n`` in the cell) and the tool exits with status 1.

With ``--loss-ratios`` it prints instead, per method, the ratio of the
anchor-loss terms (every logged ``*loss_*`` term but the cross-entropy
``loss_ce``/``loss_cls``) to the cross-entropy at the first logged training
iteration and at the last, mean ± std over seeds, read from each run's
``vis_data/scalars.json`` (in the run dirs the results name, so on the
machine that ran the sweep).
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from sar_plugin.report.stats import describe, paired


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('results', help='results.json of tools/sweep.py')
    parser.add_argument('--split', default='test',
                        help='split to tabulate (default: test)')
    parser.add_argument('--reference', default=None,
                        help='method the others are paired with (default: '
                        'the first of --methods)')
    parser.add_argument('--methods', nargs='+',
                        help='NAME or NAME=LABEL, in table order (default: '
                        'every method of the sweep, by its name)')
    parser.add_argument('--confidence', type=float, default=0.95,
                        help='level of the paired intervals (default: 0.95)')
    parser.add_argument('--loss-ratios', action='store_true',
                        help='print the anchor-loss / cross-entropy ratios '
                        'of the training logs instead (see above)')
    return parser.parse_args(argv)


def seed_values(runs: Sequence[Mapping], method: str, split: str,
                group: str, key: str) -> Dict[int, Optional[float]]:
    """``{seed: value}`` of one number of every ok run of ``method``."""
    out = {}
    for run in runs:
        if run['method'] == method and run['split'] == split and \
                run.get('status') == 'ok':
            value = (run.get(group) or {}).get(key)
            out[int(run['seed'])] = None if value is None else float(value)
    return out


def headline(runs: Sequence[Mapping]) -> str:
    """The first summary key of the records (``mIoU`` / ``top1``...)."""
    for run in runs:
        if run.get('status') == 'ok' and run.get('summary'):
            return next(iter(run['summary']))
    raise SystemExit('no evaluated run in the results')


def cell(values: Mapping[int, Optional[float]], digits: int = 2) -> str:
    stat = describe(values)
    if stat.n == 0:
        return 'n/a'
    std = 'n/a' if stat.n < 2 else f'{stat.std:.{digits}f}'
    extra = '' if stat.n == 3 else f' (n={stat.n})'
    return f'{stat.mean:.{digits}f} ± {std}{extra}'


def signed(value: float) -> str:
    return f'{value:+.2f}'.replace('-', '−')


def table(results: Mapping, split: str, methods: List[Tuple[str, str]],
          reference: str, confidence: float = 0.95) -> Tuple[str, bool]:
    """The Markdown table and whether every method has all its seeds."""
    runs = results['runs']
    seeds = list(results['sweep']['seeds'])
    key = headline(runs)
    buckets = []
    for run in runs:
        if run.get('status') == 'ok' and run.get('buckets'):
            buckets = list(run['buckets'])
            break
    level = f'{round(100 * confidence)}%'
    head = ['method', key] + buckets + [
        'Fisher ratio', f'{key} − {dict(methods).get(reference, reference)} '
        f'[{level} t]', 'better in']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    complete = True
    ref = seed_values(runs, reference, split, 'summary', key)
    for name, label in methods:
        main = seed_values(runs, name, split, 'summary', key)
        complete &= sorted(s for s, v in main.items() if v is not None) \
            == sorted(seeds)
        row = [label, cell(main)]
        row += [cell(seed_values(runs, name, split, 'buckets', b))
                for b in buckets]
        row.append(cell(seed_values(runs, name, split, 'features', 'fisher'),
                        3))
        if name == reference:
            row += ['', '']
        else:
            p = paired(ref, main, confidence)
            if p.n < 2:
                row += [f'{signed(p.mean)} (n={p.n})' if p.n else 'n/a', '']
            else:
                row += [f'{signed(p.mean)} [{signed(p.t_low)}, '
                        f'{signed(p.t_high)}]', f'{p.better}/{p.n}']
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines), complete


CE_TERMS = ('loss_ce', 'loss_cls')


def loss_ratios(work_dir: str) -> Tuple[float, float, int, int]:
    """(first, last) ratio of the anchor terms to the cross-entropy in a
    run's training log, and the iterations they were logged at."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    records = []
    for path in logs:
        with open(path) as f:
            records += [r for r in map(json.loads, f)
                        if 'iter' in r and 'loss' in r]
    if not records:
        raise SystemExit(f'no training log (vis_data/scalars.json) under '
                         f'{work_dir}')

    def ratio(record):
        ce = sum(v for k, v in record.items()
                 if k.rsplit('.', 1)[-1] in CE_TERMS)
        anchor = sum(v for k, v in record.items()
                     if 'loss_' in k and k.rsplit('.', 1)[-1] not in CE_TERMS)
        return anchor / ce

    records.sort(key=lambda r: r['iter'])
    return (ratio(records[0]), ratio(records[-1]), records[0]['iter'],
            records[-1]['iter'])


def ratio_table(results: Mapping, methods: List[Tuple[str, str]]) -> str:
    lines = ['| method | anchor / CE, first logged iteration | '
             'anchor / CE, last iteration |', '|---|---|---|']
    for name, label in methods:
        firsts, lasts, iters = {}, {}, set()
        for run in results['runs']:
            if run['method'] == name and run['seed'] not in firsts and \
                    run.get('status') == 'ok':
                first, last, i0, i1 = loss_ratios(run['work_dir'])
                firsts[run['seed']], lasts[run['seed']] = first, last
                iters.add((i0, i1))
        at = ', '.join(f'logged at iterations {a} and {b}'
                       for a, b in sorted(iters))
        lines.append(f'| {label} ({at}) | {cell(firsts, 3)} | '
                     f'{cell(lasts, 3)} |')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        with open(args.results) as f:
            results = json.load(f)
    except (OSError, ValueError) as err:
        raise SystemExit(f'{args.results}: {err}') from err
    names = args.methods or list(results['sweep']['methods'])
    methods = [tuple(m.split('=', 1)) if '=' in m else (m, m) for m in names]
    known = set(results['sweep']['methods'])
    for name, _ in methods:
        if name not in known:
            raise SystemExit(f'--methods: {name!r} is not a method of '
                             f'{args.results} ({sorted(known)})')
    if args.loss_ratios:
        print(ratio_table(results, methods))
        return 0
    reference = args.reference or methods[0][0]
    text, complete = table(results, args.split, methods, reference,
                           args.confidence)
    print(text)
    return 0 if complete else 1


if __name__ == '__main__':
    sys.exit(main())

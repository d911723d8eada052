"""The embedded demo: train the baseline and the SAR model on the synthetic
long-tailed set, evaluate them, print per-class IoU side by side and write
the long-tail report (``<work-dir>/report/report.{md,html}`` and plots).

    python tools/demo.py [--work-dir work_dirs/demo] [--cfg-options ...]

Each run is a real ``tools/train.py`` run (its own process and work dir under
``--work-dir``); the numbers printed are read back from the runs' own scalar
logs (the last validation), so they can be checked against the logs.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List

from sar_plugin.report import make_report
from sar_plugin.report.document import Heading, Table, to_markdown

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

_SUFFIX = 'fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py'
DEMO_RUNS = {
    'baseline': f'configs/demo/{_SUFFIX}',
    **{
        name: f'configs/demo/{name}_{_SUFFIX}'
        for name in ('sar', 'ancm-euclidean', 'ancm-cosine', 'hal', 'ldmat',
                     'large-margin', 'center')
    }
}
DEFAULT_RUNS = ['baseline', 'sar']


def last_val_metrics(work_dir: str) -> Dict[str, float]:
    """The last logged validation metrics of a ``tools/train.py`` run."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'no scalars.json under {work_dir}')
    found = None
    for path in logs:
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'mIoU' in record:
                    found = record
    if found is None:
        raise RuntimeError(f'no validation result logged under {work_dir}')
    return found


def table(results: Dict[str, Dict[str, float]], classes: List[str],
          shares: List[float]) -> Table:
    """Per-class IoU of every run; with two runs a delta column, with more
    each value carries its delta to the first run."""
    names = list(results)
    pair = len(names) == 2

    def cells(vals):
        if pair:
            return [f'{vals[0]:.2f}', f'{vals[1]:.2f}',
                    f'{vals[1] - vals[0]:+.2f}']
        return [f'{vals[0]:.2f}'] + [f'{v:.2f} ({v - vals[0]:+.2f})'
                                     for v in vals[1:]]

    rows = []
    for cls, share in zip(classes, shares):
        vals = [results[n].get(f'IoU.{cls}', float('nan')) for n in names]
        rows.append([cls, f'{100 * share:.2f}'] + cells(vals))
    for key in ('mIoU', 'mAcc', 'aAcc'):
        rows.append([f'**{key}**', ''] + cells([results[n][key]
                                                for n in names]))
    return Table(['class', 'train pixels %'] + [f'{n} IoU' for n in names] +
                 (['delta'] if pair else []), rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='one sub-folder per run and report/ '
                        '(default: work_dirs/demo)')
    parser.add_argument(
        '--runs', nargs='+', default=DEFAULT_RUNS, choices=list(DEMO_RUNS),
        help='which demo configs to train (the first is the reference)')
    parser.add_argument(
        '--cfg-options', nargs='+', default=[],
        help='passed to tools/train.py (e.g. train_cfg.max_iters=100)')
    parser.add_argument(
        '--reuse', action='store_true',
        help='do not retrain a run whose work dir already logged a '
        'validation result')
    args = parser.parse_args()

    results = {}
    for name in args.runs:
        work_dir = osp.join(args.work_dir, name)
        if args.reuse:
            try:
                results[name] = last_val_metrics(work_dir)
                print(f'[demo] {name}: reusing {work_dir} (mIoU '
                      f'{results[name]["mIoU"]:.2f})', flush=True)
                continue
            except (FileNotFoundError, RuntimeError):
                pass
        cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'),
               osp.join(REPO, DEMO_RUNS[name]), '--work-dir', work_dir]
        if args.cfg_options:
            cmd += ['--cfg-options'] + args.cfg_options
        print(f'[demo] training {name}: {" ".join(cmd)}', flush=True)
        log_path = osp.join(args.work_dir, f'{name}.log')
        os.makedirs(args.work_dir, exist_ok=True)
        with open(log_path, 'w') as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            with open(log_path) as log:
                tail = log.readlines()[-30:]
            sys.exit(f'[demo] {name} failed (log: {log_path}):\n' +
                     ''.join(tail))
        results[name] = last_val_metrics(work_dir)
        print(f'[demo] {name}: mIoU {results[name]["mIoU"]:.2f} '
              f'(log: {log_path})', flush=True)

    from mmengine.config import Config

    # the config as the run used it (dumped by the runner into its work dir)
    first = args.runs[0]
    cfg = Config.fromfile(
        osp.join(args.work_dir, first, osp.basename(DEMO_RUNS[first])))
    root = cfg.train_dataloader.dataset.data_root
    with open(osp.join(root, 'manifest.json')) as f:
        manifest = json.load(f)
    rows = table(results, manifest['classes'], manifest['train_pixel_share'])
    summary = osp.join(args.work_dir, 'summary.md')
    with open(summary, 'w') as f:
        f.write(to_markdown([
            Heading('Demo: per-class IoU on the synthetic long-tailed set '
                    '(validation, last checkpoint)', 1), rows], args.work_dir))
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(dict(results=results, classes=manifest['classes'],
                       train_pixel_share=manifest['train_pixel_share']),
                  f, indent=2)
    print('\n' + to_markdown([rows], args.work_dir).rstrip('\n') +
          f'\n\n[demo] written {summary}')

    # the long-tail report of the runs (tools/longtail_report.py), from the
    # records their metrics wrote; nothing is re-run
    files = make_report([osp.join(args.work_dir, n) for n in args.runs],
                        osp.join(args.work_dir, 'report'), names=args.runs,
                        title='Demo: long-tail report on the synthetic set')
    print(f'[demo] long-tail report: {osp.abspath(files["markdown"])}\n'
          f'[demo]                   {osp.abspath(files["html"])}')


if __name__ == '__main__':
    main()

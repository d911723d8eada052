"""Long-tail report for existing checkpoints, plain MMSeg or SAR, without
editing the config.

    python tools/longtail_eval.py CONFIG CKPT [CKPT ...] --out DIR \\
        [--names baseline sar] [--configs CONFIG2 ...] \\
        [--class-frequency FILE] [--cfg-options KEY=VALUE ...] [--no-tsne]

Every checkpoint is evaluated on the config's ``test_dataloader`` by
``tools/test.py --longtail`` (its IoUMetric becomes LongTailIoUMetric,
FeatureCompactnessMetric and the feature export are added) into
``DIR/<name>/``; then ``tools/longtail_report.py`` compares them, the first
one being the reference, in ``DIR/report/``. The buckets come from
``--class-frequency`` (a JSON of ``tools/analysis/class_frequency.py``) or
else from the config's training split, counted once into ``DIR/`` and
shared by all checkpoints. ``--configs`` gives one config per checkpoint
when they differ (a SAR checkpoint loads into the plain config and vice
versa, so one config usually serves all).
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the config the checkpoints are '
                        'evaluated with (its test_dataloader)')
    parser.add_argument('checkpoints', nargs='+', metavar='CKPT',
                        help='checkpoint files; the first is the reference '
                        'of the report')
    parser.add_argument('--out', required=True,
                        help='output folder: DIR/<name>/ per checkpoint, '
                        'DIR/report/')
    parser.add_argument('--names', nargs='+',
                        help='labels of the checkpoints (default: their '
                        'file names without .pth)')
    parser.add_argument('--configs', nargs='+', metavar='CONFIG',
                        help='one config per checkpoint instead of CONFIG '
                        'for all')
    parser.add_argument('--class-frequency',
                        help='JSON of tools/analysis/class_frequency.py '
                        "(default: the config's training split, counted "
                        'once)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='config overrides, as in tools/test.py')
    parser.add_argument('--no-tsne', action='store_true',
                        help='PCA only in the feature projections of the '
                        'report')
    args = parser.parse_args(argv)
    n = len(args.checkpoints)
    if args.names and len(args.names) != n:
        parser.error(f'--names: {len(args.names)} names for {n} checkpoints')
    if args.configs and len(args.configs) != n:
        parser.error(f'--configs: {len(args.configs)} configs for {n} '
                     'checkpoints')
    for path in [args.config] + list(args.configs or []) + args.checkpoints:
        if not osp.isfile(path):
            parser.error(f'no such file: {path}')
    if args.class_frequency and not osp.isfile(args.class_frequency):
        parser.error(f'--class-frequency: no such file: '
                     f'{args.class_frequency}')
    names = args.names or [osp.splitext(osp.basename(c))[0]
                           for c in args.checkpoints]
    if len(set(names)) != len(names):
        parser.error(f'checkpoint names {names} are not unique: give '
                     '--names')
    from sar_plugin.utils.paths import check_dir_name
    for name in names:  # each becomes <out>/<name>
        try:
            check_dir_name(name)
        except ValueError as err:
            parser.error(str(err))
    args.names = names
    return args


def test_command(config: str, checkpoint: str, work_dir: str, cache: str,
                 args: argparse.Namespace) -> List[str]:
    command = [sys.executable, osp.join(REPO, 'tools', 'test.py'), config,
               checkpoint, '--work-dir', work_dir, '--longtail',
               '--class-frequency-cache', cache]
    if args.class_frequency:
        command += ['--class-frequency', osp.abspath(args.class_frequency)]
    if args.cfg_options:
        command += ['--cfg-options'] + list(args.cfg_options)
    return command


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    out = osp.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    configs = args.configs or [args.config] * len(args.checkpoints)
    runs = []
    for k, (name, config, ckpt) in enumerate(
            zip(args.names, configs, args.checkpoints), 1):
        work_dir = osp.join(out, name)
        log = osp.join(out, f'{name}.log')
        print(f'[longtail_eval] {k}/{len(configs)} {name}: {ckpt} '
              f'(log: {log})', flush=True)
        with open(log, 'w') as f:
            code = subprocess.call(
                test_command(config, ckpt, work_dir, out, args),
                stdout=f, stderr=subprocess.STDOUT)
        if code:
            with open(log) as f:
                tail = ''.join(f.readlines()[-20:])
            print(tail, file=sys.stderr)
            print(f'[longtail_eval] {name}: tools/test.py exited with '
                  f'{code} (log: {log})', file=sys.stderr)
            return code
        runs.append(work_dir)
    from sar_plugin.report import make_report
    files = make_report(runs, osp.join(out, 'report'), names=args.names,
                        use_tsne=not args.no_tsne)
    print(f'[longtail_eval] report: {files["html"]} and {files["markdown"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Long-tail report of finished runs: per-class and per-bucket scores side by
side, deltas against the first run, feature compactness and plots.

    python tools/longtail_report.py RUN_DIR [RUN_DIR ...] --out DIR \\
        [--names baseline sar] [--title ...] [--no-tsne] \\
        [--checkpoints CKPT|- ...]

A run dir is a ``tools/train.py`` / ``tools/test.py`` work dir whose
evaluator had ``LongTailIoUMetric`` (segmentation) or ``LongTailAccuracy``
(classification), and optionally ``FeatureCompactnessMetric`` with the
``LongTailEvalHook``; the newest evaluation record of each run is used (a
log dir or a record JSON may be given instead). Nothing is re-run.

The run table shows when each run was evaluated: the iteration its record
holds (training runs), else the ``meta`` iteration / epoch of the checkpoint
``tools/test.py`` evaluated (named by the config dumped beside the record,
or given with ``--checkpoints``; loaded weights-only).

The t-SNE panels need scikit-learn, the optional ``report`` extra
(``pip install "sar_plugin[report]"``); without it the report says so and
draws the PCA panels.

Writes ``DIR/report.md``, a self-contained ``DIR/report.html`` (pictures
embedded), ``DIR/report.json`` (the tables' numbers) and the PNG plots.
"""
import argparse
import os.path as osp

from sar_plugin.report import make_report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('runs', nargs='+', metavar='RUN_DIR',
                        help='work dirs; the first is the reference')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--names', nargs='+', help='labels of the runs')
    parser.add_argument('--title', help='report title')
    parser.add_argument('--no-tsne', action='store_true',
                        help='PCA only in the feature projections')
    parser.add_argument(
        '--checkpoints', nargs='+', metavar='CKPT',
        help='the checkpoint each run evaluated, one per run (- for a run '
        'whose records tell it), whose meta gives the iteration/epoch shown '
        '(default: the record\'s iteration, else the load_from of the '
        'config dumped beside it)')
    args = parser.parse_args(argv)
    files = make_report(args.runs, args.out, names=args.names,
                        title=args.title, use_tsne=not args.no_tsne,
                        checkpoints=args.checkpoints)
    for key, path in files.items():
        print(f'{key:>14}: {path}')
    print(f'[longtail_report] written {osp.abspath(files["html"])}')


if __name__ == '__main__':
    main()

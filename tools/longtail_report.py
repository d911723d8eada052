"""Long-tail report of finished runs: per-class and per-bucket scores side by
side, deltas against the first run, feature compactness and plots.

    python tools/longtail_report.py RUN_DIR [RUN_DIR ...] --out DIR \\
        [--names baseline sar] [--title ...] [--no-tsne]

A run dir is a ``tools/train.py`` / ``tools/test.py`` work dir whose
evaluator had ``LongTailIoUMetric`` (segmentation) or ``LongTailAccuracy``
(classification), and optionally ``FeatureCompactnessMetric`` with the
``LongTailEvalHook``; the newest evaluation record of each run is used (a
log dir or a record JSON may be given instead). Nothing is re-run.

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
    args = parser.parse_args(argv)
    files = make_report(args.runs, args.out, names=args.names,
                        title=args.title, use_tsne=not args.no_tsne)
    for key, path in files.items():
        print(f'{key:>14}: {path}')
    print(f'[longtail_report] written {osp.abspath(files["html"])}')


if __name__ == '__main__':
    main()

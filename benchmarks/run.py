"""Benchmark the anchor losses (``loss``) or whole training steps
(``train``), side by side in one run; print a table and write JSON.

``loss``: every anchor loss, forward + backward on the same
``N x C x H x W`` features, against ``F.mse_loss`` on the same tensor (the
floor) and, for SAR, against the pull computed the reference
implementation's way (one-hot label map times the anchors, unreduced
squared-error map), for every K and dtype given; then HAL against an
in-batch pairwise NCA loss.

``train``: one config's training step without its anchor losses (``plain``:
SARHead replaced by the head it wraps), with them, and with them but
without the label checks; same seed, same pre-loaded batch, interleaved
steps, warm-up dropped.

All cases of a table are measured in one process, round by round (every
case once per round), so load changes hit them alike; times are medians
over the timed rounds and ratios are what to compare across machines.
Peak memory is torch's tensor memory above what existed before the step
(CPU: the profiler's allocation events; CUDA: ``max_memory_allocated``).

Examples::

    python benchmarks/run.py loss --classes 19 150 --dtypes float32 bfloat16
    python benchmarks/run.py train \\
        configs/demo/sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py
    python benchmarks/run.py train CONFIG --size 256 512 --batch-size 2 \\
        --rounds 5 --warmup 2 --out work_dirs/bench/train.json
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import torch

import sar_plugin  # noqa: F401
from sar_plugin._stack import mmseg_available
# sar_bench/ lies beside this file, whose directory is sys.path[0] when it
# runs as a script (and is on pytest's pythonpath, see pyproject.toml)
from sar_bench import hal_vs_pairwise, loss_table

# the loss benchmark needs torch alone; whole training steps need MMSeg
PLAIN, ANCHORS, NO_CHECKS = 'plain', 'anchors', 'anchors, no label checks'
if mmseg_available():
    from mmengine.config import Config, DictAction
    from sar_bench.train import train_table
else:
    DictAction = None

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16,
          'float16': torch.float16}


PRINTED = []


def say(text: str = '') -> None:
    """Print, and keep for the Markdown file written beside ``--out``."""
    print(text)
    PRINTED.append(text)


def log(message: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {message}', file=sys.stderr,
          flush=True)


def table(rows, columns) -> str:
    """A Markdown table of ``rows`` (dicts) with ``(key, header, format)``
    columns."""
    lines = ['| ' + ' | '.join(h for _, h, _ in columns) + ' |',
             '|' + '---|' * len(columns)]
    for row in rows:
        cells = [('' if row.get(k) is None else fmt.format(row[k]))
                 for k, _, fmt in columns]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def run_loss(args) -> dict:
    device = args.device
    out = dict(mode='loss', shape=args.shape, device=device, tables=[])
    for k in args.classes:
        for name in args.dtypes:
            log(f'loss: K={k}, {name}')
            rows = loss_table(args.shape, k, DTYPES[name], device,
                              args.rounds, progress=log)
            out['tables'].append(dict(classes=k, dtype=name, rows=rows))
            n, c, h, w = args.shape
            say(f'\n### K={k}, {name}, features {n}x{c}x{h}x{w} '
                  f'({device})\n')
            say(table(rows, [
                ('loss', 'loss', '{}'), ('ms', 'ms (median)', '{:.1f}'),
                ('x_floor', '× floor', '{:.2f}'),
                ('peak_mib', 'peak MiB', '{:.1f}'),
                ('mem_x_floor', 'mem × floor', '{:.2f}'),
                ('x_reference', 'reference ÷ SAR time', '{:.2f}'),
                ('mem_x_reference', 'reference ÷ SAR mem', '{:.2f}')]))
    if args.nca_samples and device == 'cpu':
        log('HAL vs pairwise NCA')
        res = hal_vs_pairwise(args.shape, args.classes[0], args.nca_samples,
                              args.rounds)
        out['hal_vs_pairwise_nca'] = res
        say(f'\nHAL vs in-batch pairwise NCA on the same {res["samples"]} '
              f'pixels: {res["hal_ms"]:.2f} ms vs {res["nca_ms"]:.1f} ms '
              f'({100 * res["time_ratio"]:.1f}% of the time), '
              f'{res["hal_mib"]:.1f} MiB vs {res["nca_mib"]:.1f} MiB '
              f'({100 * res["memory_ratio"]:.1f}% of the memory)')
    return out


def run_train(args) -> dict:
    if not mmseg_available():
        raise SystemExit('benchmarks/run.py train needs MMSegmentation '
                         '(and mmcv with ops); the loss benchmark does not')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    log(f'train: {args.config}')
    rows, _ = train_table(cfg, args.rounds, args.warmup, args.device,
                          batch_size=args.batch_size, size=args.size,
                          variants=args.variants, progress=log)
    say(f'\n### {osp.basename(args.config)} ({args.device}, '
          f'{args.rounds} timed steps after {args.warmup} warm-up)\n')
    say(table(rows, [
        ('variant', 'variant', '{}'), ('s_per_iter', 's/iter (median)',
                                       '{:.4f}'),
        ('x_plain', '× plain', '{:.3f}'), ('peak_mib', 'peak MiB', '{:.1f}'),
        ('mem_x_plain', 'mem × plain', '{:.3f}')]))
    return dict(mode='train', config=args.config, device=args.device,
                rounds=args.rounds, warmup=args.warmup,
                batch_size=args.batch_size, size=args.size, rows=rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default=None,
                        help="'cpu' or 'cuda' (default: cuda if available)")
    parser.add_argument('--threads', type=int, default=2,
                        help='torch intra-op threads on the CPU (default: 2)')
    parser.add_argument('--out', default=None,
                        help='write the results as JSON to this file, and '
                        'the printed tables as Markdown beside it (.md)')
    sub = parser.add_subparsers(dest='mode', required=True)
    loss = sub.add_parser('loss', help='the anchor losses alone')
    loss.add_argument('--shape', type=int, nargs=4, default=[8, 256, 64, 128],
                      metavar=('N', 'C', 'H', 'W'),
                      help='the feature map every loss gets (default: 8 256 '
                      '64 128)')
    loss.add_argument('--classes', type=int, nargs='+', default=[19, 150],
                      help='numbers of classes K, one table each (default: '
                      '19 150, Cityscapes and ADE20K)')
    loss.add_argument('--dtypes', nargs='+', choices=list(DTYPES),
                      default=None,
                      help='feature dtypes, one table each (default: float32 '
                      'bfloat16 on the CPU, float32 float16 on CUDA)')
    loss.add_argument('--rounds', type=int, default=5,
                      help='timed forward + backward passes per case '
                      '(default: 5)')
    loss.add_argument('--nca-samples', type=int, default=4096,
                      help='pixels of the HAL vs pairwise NCA comparison; 0 '
                      'skips it (default: 4096)')
    train = sub.add_parser('train', help='whole training steps of a config')
    train.add_argument('config', help='a config with anchor losses')
    train.add_argument('--rounds', type=int, default=20,
                       help='timed steps per variant (default: 20)')
    train.add_argument('--warmup', type=int, default=5,
                       help='untimed steps per variant first (default: 5)')
    train.add_argument('--batch-size', type=int, default=None,
                       help="images per step (default: the config's "
                       'train_dataloader.batch_size)')
    train.add_argument('--size', type=int, nargs=2, default=None,
                       metavar=('H', 'W'),
                       help="image size (default: the config's crop_size)")
    train.add_argument('--variants', nargs='+', default=None,
                       choices=[PLAIN, ANCHORS, NO_CHECKS],
                       help='variants to run (default: all; plain is always '
                       'run, the ratios are to it)')
    train.add_argument('--cfg-options', nargs='+',
                       **(dict(action=DictAction) if DictAction else {}),
                       help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    PRINTED.clear()
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.set_num_threads(args.threads)
    if args.mode == 'loss' and args.dtypes is None:
        args.dtypes = ['float32', 'float16' if args.device == 'cuda'
                       else 'bfloat16']
    say('command: python benchmarks/run.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv))
    say(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
        f'device {args.device}')
    result = run_loss(args) if args.mode == 'loss' else run_train(args)
    result.update(torch=torch.__version__, threads=torch.get_num_threads())
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
        markdown = osp.splitext(args.out)[0] + '.md'
        with open(markdown, 'w') as f:
            f.write('\n'.join(PRINTED) + '\n')
        log(f'wrote {args.out} and {markdown}')


if __name__ == '__main__':
    main()

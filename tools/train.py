"""Train a segmentor (or classifier) with sar_plugin registered.

Same flags and behaviour as MMSeg 1.2.2's ``tools/train.py``; in addition the
config is adapted to the machine (SyncBN -> BN and gloo without CUDA, bfloat16
autocast for ``--amp`` on CPU, torch >= 2.6 checkpoint loading), see
:func:`sar_plugin.utils.prepare_config`.
"""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import sar_plugin  # noqa: F401  (registers the plug-in)
from mmseg.registry import RUNNERS
from sar_plugin.utils import destroy_process_group, prepare_config


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    prepare_config(
        cfg,
        launcher=args.launcher,
        amp=args.amp,
        config_path=args.config,
        work_dir=args.work_dir)
    cfg.resume = args.resume
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    try:
        runner.train()
    except BaseException:
        destroy_process_group(barrier=False)
        raise
    destroy_process_group()


if __name__ == '__main__':
    main()

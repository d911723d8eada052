"""Train a segmentor (or classifier) with sar_plugin registered.

Same flags and the same run as MMSeg 1.2.2's ``tools/train.py`` (the hooks of
a run are its config's: ``configs/_base_/sar_runtime.py``). What this tool
adds:

- the config is adapted to the machine (SyncBN -> BN and gloo without CUDA,
  bfloat16 autocast for ``--amp`` on CPU, torch >= 2.6 checkpoint loading),
  see :func:`sar_plugin.utils.prepare_config`;
- ``--resume [CHECKPOINT]`` takes a path (MMSeg's takes none), falls back
  past a truncated newest checkpoint, and refuses an unreadable one before
  any work; ``--auto-resume`` starts afresh when there is none.
"""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import sar_plugin  # noqa: F401  (registers the plug-in)
from mmseg.registry import RUNNERS
from mmengine.logging import print_log

from sar_plugin.utils import destroy_process_group, prepare_config
from sar_plugin.utils.resume import (check_checkpoint_file,
                                     find_resume_checkpoint)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CHECKPOINT',
        help='resume training: without a value from the newest intact '
        'checkpoint of the work dir (falling back past a truncated or empty '
        'last checkpoint, with a warning; an error if the work dir has no '
        'checkpoint at all), or from the CHECKPOINT given')
    parser.add_argument(
        '--auto-resume',
        action='store_true',
        help='like --resume without a value, but start from scratch when the '
        'work dir has no checkpoint yet (for jobs that are requeued)')
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help='set by the distributed launcher (torchrun '
                        'uses the LOCAL_RANK variable instead)')
    args = parser.parse_args()
    if args.auto_resume and args.resume not in (None, 'auto'):
        parser.error(f'--resume {args.resume} and --auto-resume contradict '
                     'each other: --auto-resume takes the newest checkpoint '
                     'of the work dir; give one of them')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def choose_checkpoint(cfg: Config, args) -> None:
    """Set ``cfg.resume``/``cfg.load_from`` from ``--resume`` and
    ``--auto-resume``, refusing a checkpoint that cannot be loaded (named)
    before any work is done."""
    if args.resume == 'auto' or args.auto_resume:
        path = find_resume_checkpoint(cfg.work_dir,
                                      missing_ok=args.auto_resume)
        if path is None:
            print_log(f'--auto-resume: no checkpoint in {cfg.work_dir} yet, '
                      'training from scratch.', logger='current')
        cfg.resume = path is not None
        cfg.load_from = path if path is not None else cfg.get('load_from')
    elif args.resume is not None:
        check_checkpoint_file(args.resume, '--resume')
        cfg.resume = True
        cfg.load_from = args.resume
    else:
        cfg.resume = False
    if cfg.get('load_from'):
        check_checkpoint_file(cfg.load_from,
                              '--resume' if cfg.resume else 'load_from')


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
    choose_checkpoint(cfg, args)
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

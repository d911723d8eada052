"""Test (evaluate) a checkpoint with sar_plugin registered.

Same flags and behaviour as MMSeg 1.2.2's ``tools/test.py`` (``--work-dir``,
``--out``, ``--show``, ``--show-dir``, ``--wait-time``, ``--tta``,
``--cfg-options``, ``--launcher``), with the config adapted to the machine as
in ``tools/train.py``, and one difference: a checkpoint that leaves any
parameter or buffer of the model unfilled is refused, listing the entries
(``--allow-missing`` restores MMSeg's warn-and-evaluate); the anchor-loss
entries of a SAR checkpoint (``*.anchor_losses.*``) are training-only and
never required. Checkpoints are loaded weights-only
(:func:`sar_plugin.utils.checkpoint.load_checkpoint_file`). ``--longtail``
evaluates with the long-tail metrics whatever the config says. The hooks of
the run are the config's (``configs/_base_/sar_runtime.py``).
"""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import sar_plugin  # noqa: F401  (registers the plug-in)
from sar_plugin.utils import destroy_process_group, prepare_config
from sar_plugin.utils.loading import load_checkpoint_checked
from sar_plugin.utils.longtail_config import add_longtail_evaluation
from sar_plugin.utils.resume import check_checkpoint_file


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='if specified, the evaluation metric results will be dumped '
        'into the directory as json')
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    parser.add_argument(
        '--allow-missing',
        action='store_true',
        help='evaluate even when the checkpoint leaves parameters or buffers '
        'of the model unfilled (MMEngine\'s default behaviour: they keep '
        'their initial values and only a warning is logged); without it such '
        'a checkpoint is refused with the list of missing entries')
    parser.add_argument(
        '--longtail',
        action='store_true',
        help='evaluate with the long-tail metrics whatever the config says: '
        'its IoUMetric becomes LongTailIoUMetric (per-class and '
        'head/body/tail mIoU), FeatureCompactnessMetric and the hooks they '
        'need are added; records go to the work dir for '
        'tools/longtail_report.py')
    parser.add_argument(
        '--class-frequency',
        help='with --longtail: the JSON of tools/analysis/class_frequency.py '
        'the buckets come from (default: the config\'s training split, '
        'counted once and cached in the work dir)')
    parser.add_argument(
        '--class-frequency-cache',
        help='with --longtail: folder of that cached count (default: the '
        'work dir), to share it between evaluations')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help='set by the distributed launcher (torchrun '
                        'uses the LOCAL_RANK variable instead)')
    args = parser.parse_args()
    if (args.class_frequency or args.class_frequency_cache) and \
            not args.longtail:
        parser.error('--class-frequency and --class-frequency-cache need '
                     '--longtail')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_output_dir(cfg, out: str) -> None:
    """MMSeg's ``--out``: the IoU metrics save the predictions to ``out``.

    The test evaluator may be one metric or a list (the long-tail configs
    add ``FeatureCompactnessMetric``); every ``IoUMetric`` of it (including
    ``LongTailIoUMetric``) gets ``output_dir`` and ``keep_results``.
    """
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import METRICS
    metrics = cfg.test_evaluator
    if isinstance(metrics, dict) and 'metrics' in metrics:
        metrics = metrics['metrics']
    found = False
    for metric in metrics if isinstance(metrics, list) else [metrics]:
        metric_cls = METRICS.get(metric['type']) \
            if isinstance(metric['type'], str) else metric['type']
        if metric_cls is not None and issubclass(metric_cls, IoUMetric):
            metric['output_dir'] = out
            metric['keep_results'] = True
            found = True
    if not found:
        raise ValueError('--out needs an IoUMetric (or LongTailIoUMetric) in '
                         f'test_evaluator, got {cfg.test_evaluator}')


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' in default_hooks:
        visualization_hook = default_hooks['visualization']
        visualization_hook['draw'] = True
        if args.show:
            visualization_hook['show'] = True
            visualization_hook['wait_time'] = args.wait_time
        if args.show_dir:
            visualizer = cfg.visualizer
            visualizer['save_dir'] = args.show_dir
    else:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks. '
            'refer to usage "visualization=dict(type=\'VisualizationHook\')"')
    return cfg


def main():
    args = parse_args()
    # a 0-byte, truncated or missing file is named before any work
    check_checkpoint_file(args.checkpoint, 'CHECKPOINT')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    prepare_config(
        cfg,
        launcher=args.launcher,
        config_path=args.config,
        work_dir=args.work_dir)
    if args.longtail:
        add_longtail_evaluation(cfg, args.class_frequency,
                                args.class_frequency_cache, splits=('test', ))
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        set_output_dir(cfg, args.out)
    runner = Runner.from_cfg(cfg)
    try:
        load_checkpoint_checked(runner, args.checkpoint, args.allow_missing)
        runner.test()
    except BaseException:
        destroy_process_group(barrier=False)
        raise
    destroy_process_group()


if __name__ == '__main__':
    main()

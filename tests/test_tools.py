"""End to end: the shipped demo configs through MMEngine's Runner, and the
plug-in's tools (train with resume, test, AMP on CPU, demo) as subprocesses
on a tiny generated data set in the real on-disk layout."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO_ROOT
from sar_plugin.heads import SARHead

DEMO_CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'demo', '*.py')))
TINY = dict(num_train=4, num_val=2, num_test=2, size=(64, 64))


def tiny_options(data_root):
    opts = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = data_root
        for key, value in TINY.items():
            opts[f'{loader}.dataset.{key}'] = value
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
    opts['train_dataloader.batch_size'] = 2
    opts['val_dataloader.batch_size'] = 1
    return opts


def cli_options(opts):
    out = []
    for key, value in opts.items():
        if isinstance(value, tuple):
            value = '(' + ','.join(map(str, value)) + ')'
        out.append(f'{key}={value}')
    return out


def run_tool(args, cwd):
    proc = subprocess.run([sys.executable] + args, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_demo_configs_exist():
    names = {osp.basename(c).split('_')[0] for c in DEMO_CONFIGS}
    assert names >= {'fcn', 'sar', 'ancm-euclidean', 'ancm-cosine', 'hal',
                     'ldmat', 'large-margin', 'center'}


@pytest.mark.parametrize('config', DEMO_CONFIGS, ids=osp.basename)
def test_demo_config_trains_and_predicts_through_runner(config, tmp_path):
    cfg = Config.fromfile(config)
    assert cfg.custom_imports == dict(
        imports=['sar_plugin'], allow_failed_imports=False)
    cfg.merge_from_dict(tiny_options(str(tmp_path / 'data')))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    from sar_plugin.utils import prepare_config
    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert 'mIoU' in metrics and 'IoU.c0' in metrics
    # long-tail evaluation: buckets from the data set's training counts,
    # the feature metric on the exported classifier input
    assert {'mIoU.head', 'mIoU.body', 'mIoU.tail'} & set(metrics)
    assert 'feat/fisher' in metrics and 'feat/intra_mean' in metrics
    head = runner.model.decode_head
    logs = runner.message_hub.log_scalars
    if osp.basename(config).startswith('fcn_'):
        assert type(head).__name__ == 'FCNHead'
        return
    assert isinstance(head, SARHead) and len(head.anchor_losses) == 1
    name = head.anchor_losses[0].loss_name
    terms = [k for k in logs if k.startswith(f'train/decode.{name}')]
    assert terms, f'no {name} term logged: {sorted(logs)}'
    for key in terms:
        assert torch.isfinite(torch.tensor(logs[key].current()))
    if osp.basename(config).startswith('sar_'):
        assert 'train/decode.loss_sar_anchor' in logs
        assert 'train/decode.loss_sar_pull' in logs


def test_train_resume_then_test(tmp_path):
    config = osp.join(REPO_ROOT, 'configs', 'demo',
                      'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
    work = str(tmp_path / 'work')
    opts = tiny_options(str(tmp_path / 'data'))
    opts.update({
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1,
        'train_cfg.val_interval': 100,
    })
    train = [osp.join(REPO_ROOT, 'tools', 'train.py'), config,
             '--work-dir', work, '--cfg-options']
    # first run stops after 2 iterations (an interruption)...
    run_tool(train + cli_options({**opts, 'train_cfg.max_iters': 2}), tmp_path)
    first = torch.load(osp.join(work, 'iter_2.pth'), weights_only=True)
    # ... the second resumes from its checkpoint, with weights_only loading
    out = run_tool(['-W', 'ignore'] + train[:1] + [config, '--work-dir', work,
                   '--resume', '--cfg-options'] +
                   cli_options({**opts, 'train_cfg.max_iters': 4}), tmp_path)
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'Iter(train) [3/4]' in out and 'Iter(train) [1/4]' not in out
    second = torch.load(osp.join(work, 'iter_4.pth'), weights_only=True)
    prefix = 'decode_head.anchor_losses.0.'
    assert torch.equal(first['state_dict'][prefix + 'anchors'],
                       second['state_dict'][prefix + 'anchors'])
    for key in ('semantic_anchors', 'gate_open', 'num_updates'):
        assert prefix + key in second['state_dict']
    assert second['meta']['iter'] == 4

    test_work = str(tmp_path / 'test')
    out = run_tool([osp.join(REPO_ROOT, 'tools', 'test.py'), config,
                    osp.join(work, 'iter_4.pth'), '--work-dir', test_work,
                    '--out', str(tmp_path / 'preds'), '--cfg-options'] +
                   cli_options(opts), tmp_path)
    assert 'mIoU' in out
    assert len(os.listdir(tmp_path / 'preds')) == TINY['num_test']
    results = glob.glob(osp.join(test_work, '*', '*.json'))
    assert results and 'mIoU' in json.load(open(results[0]))


def test_amp_on_cpu_uses_bfloat16_autocast(tmp_path):
    config = osp.join(REPO_ROOT, 'configs', 'demo',
                      'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
    opts = tiny_options(str(tmp_path / 'data'))
    opts.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 100,
                 'default_hooks.logger.interval': 1})
    out = run_tool([osp.join(REPO_ROOT, 'tools', 'train.py'), config,
                    '--work-dir', str(tmp_path / 'w'), '--amp',
                    '--cfg-options'] + cli_options(opts), tmp_path)
    assert '--amp uses bfloat16 autocast' in out
    assert "type='CPUAutocastOptimWrapper'" in out
    assert 'loss_sar_anchor' in out and 'nan' not in out.split('Iter(train)')[-1]


def test_stock_mmseg_train_tool_with_custom_imports(tmp_path):
    """The plug-in works from MMSeg's own tools/train.py via custom_imports."""
    import mmseg
    mmseg_train = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools',
                           'train.py')
    config = osp.join(REPO_ROOT, 'configs', 'demo',
                      'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
    opts = tiny_options(str(tmp_path / 'data'))
    opts.update({'train_cfg.max_iters': 1, 'train_cfg.val_interval': 100,
                 'default_hooks.logger.interval': 1})
    out = run_tool([mmseg_train, config, '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options'] + cli_options(opts), tmp_path)
    assert 'decode.loss_sar_pull' in out


def test_demo_tool_prints_side_by_side_table(tmp_path):
    opts = tiny_options(str(tmp_path / 'data'))
    opts.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                 'default_hooks.checkpoint.interval': 2})
    out = run_tool([osp.join(REPO_ROOT, 'tools', 'demo.py'), '--work-dir',
                    str(tmp_path / 'demo'), '--cfg-options'] +
                   cli_options(opts), tmp_path)
    assert '| class | train pixels % | baseline IoU | sar IoU | delta |' in out
    summary = json.load(open(tmp_path / 'demo' / 'summary.json'))
    for run in ('baseline', 'sar'):
        assert 'mIoU' in summary['results'][run]
        # the printed numbers are the ones the run logged
        assert f"{summary['results'][run]['mIoU']:.2f}" in out
    # ...and it ends with the long-tail report of both runs
    report = tmp_path / 'demo' / 'report'
    assert f'[demo] long-tail report: {report / "report.md"}' in out
    for name in ('report.md', 'report.html', 'per_class_IoU.png',
                 'delta_IoU.png', 'IoU_vs_frequency.png',
                 'features_0_baseline.png', 'features_1_sar.png'):
        assert (report / name).is_file(), name
    numbers = json.load(open(report / 'report.json'))
    assert numbers['runs'] == ['baseline', 'sar']
    assert set(numbers['bucket_scores']['sar']) == {'head', 'body', 'tail'}
    for run in ('baseline', 'sar'):
        assert numbers['summary'][run]['mIoU'] == pytest.approx(
            summary['results'][run]['mIoU'])


def test_dir_names_stay_inside_the_output_dir():
    from sar_plugin.utils.paths import check_dir_name
    for good in ('sar', 'ce_seed-0', 'a.b'):
        assert check_dir_name(good) == good
    for bad in ('', ' ', '.', '..', '../x', 'a/b', '/abs', '.hidden',
                'a\0b'):
        with pytest.raises(ValueError, match='--names'):
            check_dir_name(bad)

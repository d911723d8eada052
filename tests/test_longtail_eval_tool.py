"""``tools/longtail_eval.py`` and ``tools/test.py --longtail``: the long-tail
report of existing checkpoints of a plain MMSeg-style config (IoUMetric
only, no plug-in hooks) and of its SAR version, without editing them."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from conftest import REPO_ROOT
from test_tools import cli_options, run_tool, tiny_options

from sar_plugin.utils.longtail_config import add_longtail_evaluation

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
BASE = osp.join(DEMO, 'fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
SAR = osp.join(DEMO, 'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')


def plain_config(tmp_path, base=BASE, name='plain.py'):
    """The demo config as stock MMSeg would have it: IoUMetric, no hooks."""
    path = tmp_path / name
    path.write_text(
        f'_base_ = {base!r}\n'
        "val_evaluator = dict(_delete_=True, type='IoUMetric', "
        "iou_metrics=['mIoU'])\n"
        'test_evaluator = val_evaluator\n'
        'custom_hooks = []\n')
    return str(path)


def checkpoint(config, path, seed):
    """A complete checkpoint of the config's model (random weights)."""
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=0)), path)
    return str(path)


def test_add_longtail_evaluation_keeps_the_metric_arguments(tmp_path):
    cfg = Config.fromfile(plain_config(tmp_path))
    cfg.test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice'],
                              ignore_index=7)
    add_longtail_evaluation(cfg, cache_dir='/cache')
    assert cfg.test_evaluator == [
        dict(type='LongTailIoUMetric', iou_metrics=['mIoU', 'mDice'],
             ignore_index=7, class_frequency='auto'),
        dict(type='FeatureCompactnessMetric', per_class=256,
             per_class_keys=False, class_frequency='auto')]
    assert [h['type'] for h in cfg.custom_hooks] == ['LongTailEvalHook']
    assert cfg.custom_hooks[0]['cache_dir'] == '/cache'
    # a config that already has them: only the given frequency changes
    again = add_longtail_evaluation(copy_config(cfg), class_frequency='f.json')
    assert [m['class_frequency'] for m in again.test_evaluator] == \
        ['f.json', 'f.json']
    assert len(again.custom_hooks) == 1
    cfg.test_evaluator = dict(type='CityscapesMetric')
    with pytest.raises(ValueError, match='test_evaluator has no IoUMetric'):
        add_longtail_evaluation(cfg)


def copy_config(cfg):
    return Config(cfg.to_dict())


def test_longtail_eval_reports_plain_and_sar_checkpoints(tmp_path):
    plain = plain_config(tmp_path)
    sar = plain_config(tmp_path, SAR, 'sar.py')
    ckpts = [checkpoint(plain, tmp_path / 'base.pth', 0),
             checkpoint(sar, tmp_path / 'sar.pth', 1)]
    opts = cli_options(tiny_options(str(tmp_path / 'data')))
    out = run_tool([osp.join(REPO_ROOT, 'tools', 'longtail_eval.py'), plain,
                    *ckpts, '--configs', plain, sar, '--names', 'base',
                    'sar', '--out', str(tmp_path / 'out'), '--no-tsne',
                    '--cfg-options', *opts], tmp_path)
    assert '[longtail_eval] 2/2 sar' in out
    out_dir = tmp_path / 'out'
    # one count of the training split, shared by both evaluations
    counts = glob.glob(str(out_dir / 'class_frequency_train_*.json'))
    assert len(counts) == 1
    for name in ('base', 'sar'):
        records = glob.glob(str(out_dir / name / '*' / 'longtail_eval' /
                                'latest.json'))
        assert len(records) == 1, name
        record = json.load(open(records[0]))
        assert set(record['buckets']) == {'head', 'body', 'tail'}
        assert glob.glob(str(out_dir / name / '*' / 'feature_eval' / '*'))
    md = open(out_dir / 'report' / 'report.md').read()
    assert 'base' in md and 'sar' in md and 'tail' in md
    assert osp.isfile(out_dir / 'report' / 'report.html')


def test_longtail_eval_refuses_bad_arguments(tmp_path):
    import subprocess
    import sys
    tool = osp.join(REPO_ROOT, 'tools', 'longtail_eval.py')
    for args, message in (
            ([BASE, 'missing.pth', '--out', 'o'], 'no such file: missing.pth'),
            ([BASE, BASE, BASE, '--out', 'o', '--names', 'a'],
             '--names: 1 names for 2 checkpoints'),
            ([BASE, BASE, BASE, '--out', 'o'], 'are not unique'),
            # issue 21, case 3: names stay inside --out
            ([BASE, BASE, BASE, '--out', 'o', '--names', 'a', '../../x'],
             "'../../x' cannot be a file or directory name inside"),
            ([BASE, BASE, '--out', 'o', '--names', '/tmp/x'],
             "'/tmp/x' cannot be a file or directory name inside")):
        proc = subprocess.run([sys.executable, tool] + args, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not osp.exists(tmp_path / 'x') and not osp.exists('/tmp/x.log')

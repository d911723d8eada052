"""The long-tail scalars (per-class IoU, head/body/tail mIoU, ``feat/``
statistics), the anchor-loss terms and SAR's state (gate, updates, anchor
confidence) reach MMEngine's log and visualisation backends: a TensorBoard event file written through
``visualizer.vis_backends`` holds them (the README's config lines)."""
import glob
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO_ROOT
from test_tools import tiny_options

SAR = osp.join(REPO_ROOT, 'configs', 'demo',
               'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')


def test_longtail_scalars_reach_tensorboard(tmp_path):
    event_accumulator = pytest.importorskip(
        'tensorboard.backend.event_processing.event_accumulator')
    from sar_plugin.utils import prepare_config
    cfg = Config.fromfile(SAR)
    cfg.merge_from_dict(tiny_options(str(tmp_path / 'data')))
    # the lines of the README ("TensorBoard and W&B"), under a name of its
    # own: MMEngine keeps one visualizer per name per process, and earlier
    # tests created 'visualizer' without TensorBoard
    cfg.visualizer = dict(
        type='SegLocalVisualizer', name=f'visualizer_{tmp_path.name}',
        vis_backends=[dict(type='LocalVisBackend'),
                      dict(type='TensorboardVisBackend')])
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2
    prepare_config(cfg)
    Runner.from_cfg(cfg).train()
    events = glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' /
                           'events.out.tfevents.*'))
    assert len(events) == 1, events
    acc = event_accumulator.EventAccumulator(events[0])
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    for tag in ('mIoU', 'mIoU.head', 'mIoU.body', 'mIoU.tail', 'IoU.c0',
                'feat/fisher', 'feat/intra_mean', 'decode.loss_sar_pull',
                'decode.loss_sar_anchor', 'decode.sar_gate_open',
                'decode.sar_updates', 'decode.sar_anchor_conf'):
        assert tag in tags, (tag, sorted(tags))
    # SAR's state (SARLoss.log_vars): the gate cannot open before the
    # anchors are classified with confidence, and each update opens it
    gate = [e.value for e in acc.Scalars('decode.sar_gate_open')]
    updates = [e.value for e in acc.Scalars('decode.sar_updates')]
    conf = [e.value for e in acc.Scalars('decode.sar_anchor_conf')]
    assert len(gate) == len(updates) == len(conf) == 2
    assert set(gate) <= {0.0, 1.0} and all(0.0 < c < 1.0 for c in conf)
    assert updates == sorted(updates) and updates[-1] <= 2
    assert updates[-1] == sum(gate)  # the 'step' gate: open = updated
    # the same scalars in the text log and in scalars.json, and the total
    # loss is the sum of the loss terms only
    scalars = glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' /
                            'scalars.json'))
    assert len(scalars) == 1
    records = [json.loads(line) for line in open(scalars[0])]
    train = [r for r in records if 'decode.sar_updates' in r]
    assert [r['decode.sar_updates'] for r in train] == updates
    for r in train:
        terms = sum(v for k, v in r.items() if k.endswith(
            ('loss_ce', 'loss_sar_anchor', 'loss_sar_pull')))
        assert r['loss'] == pytest.approx(terms, rel=1e-3, abs=1e-3)
    logs = glob.glob(str(tmp_path / 'work' / '*' / '*.log'))
    text = open(logs[0]).read()
    assert 'decode.sar_gate_open:' in text and 'decode.sar_updates:' in text
    assert all(str(t) != 'nan' for t in tags)
    (value, ) = acc.Scalars('mIoU.tail')
    assert value.step == 2 and 0.0 <= value.value <= 100.0

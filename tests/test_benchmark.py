"""benchmarks/run.py: both modes run end to end at tiny sizes, the
reference-style SAR pull computes what SARLoss's pull computes, and the
train variants are the models they claim to be. No timing is asserted."""
import importlib.util
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from sar_bench import (model_variants, reference_style_sar_pull,
                       strip_anchor_losses)
from sar_bench.losses import FLOOR, REFERENCE, build_losses

from sar_plugin.losses.sar import SARLoss

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_SAR = osp.join(REPO, 'configs/demo/'
                    'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
CLS_SAR = osp.join(REPO, 'configs/classification/synthetic/'
                   'sar_resnet20_1xb64-30e_synthetic-cifar10-lt-r100.py')


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', osp.join(REPO, 'benchmarks/run.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_style_pull_is_sar_pull():
    gen = torch.Generator().manual_seed(0)
    n, c, h, w, k = 2, 6, 3, 5, 4
    feat = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    label = torch.randint(k, (n, h, w), generator=gen)
    label[0, 0, :2] = 255
    anchors = torch.randn(k, c, generator=gen, dtype=torch.float64)
    # by loops: mean over valid pixels and channels of (f - s_y)^2
    total, count = 0.0, 0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if label[i, y, x] != 255:
                    d = feat[i, :, y, x] - anchors[label[i, y, x]]
                    total += float((d * d).sum()) / c
                    count += 1
    ref = reference_style_sar_pull(feat, label, anchors)
    assert math.isclose(float(ref), total / count, rel_tol=1e-12)
    sar = SARLoss(num_classes=k, channels=c, pull_weight=1.0).double().eval()
    sar.semantic_anchors.copy_(anchors)
    sar.gate_open.fill_(True)
    conv = torch.nn.Conv2d(c, k, 1).double()
    pull = sar(feat, label, classifier=conv)['loss_sar_pull']
    assert math.isclose(float(pull), float(ref), rel_tol=1e-12)


def test_every_registered_feature_loss_is_benchmarked():
    from test_anchor_losses import registered_feature_losses
    benchmarked = {type(loss).__name__ for loss in build_losses(3, 4).values()}
    assert benchmarked == set(registered_feature_losses())


def test_loss_mode_smoke(tmp_path, capsys):
    out = tmp_path / 'loss.json'
    load_tool().main(['--threads', '1', '--out', str(out), 'loss',
                      '--shape', '2', '8', '4', '6', '--classes', '3', '5',
                      '--dtypes', 'float32', 'bfloat16', '--rounds', '1',
                      '--nca-samples', '16'])
    result = json.loads(out.read_text())
    assert [(t['classes'], t['dtype']) for t in result['tables']] == [
        (3, 'float32'), (3, 'bfloat16'), (5, 'float32'), (5, 'bfloat16')]
    for t in result['tables']:
        names = [row['loss'] for row in t['rows']]
        assert names[:2] == [FLOOR, REFERENCE] and 'SAR' in names
        assert len(names) == 2 + 8
        for row in t['rows']:
            assert row['ms'] > 0 and row['peak_mib'] >= 0
            assert math.isfinite(row['x_floor'])
        floor = t['rows'][0]
        assert floor['x_floor'] == 1.0 and floor['mem_x_floor'] == 1.0
        sar = next(row for row in t['rows'] if row['loss'] == 'SAR')
        assert sar['x_reference'] > 0 and sar['mem_x_reference'] > 0
    assert result['hal_vs_pairwise_nca']['samples'] == 16
    printed = capsys.readouterr().out
    assert '| SAR |' in printed and 'reference ÷ SAR time' in printed
    # the printed tables are kept beside the JSON
    assert (tmp_path / 'loss.md').read_text() == printed


def test_train_mode_smoke(tmp_path, capsys):
    out = tmp_path / 'train.json'
    load_tool().main(['--threads', '1', '--out', str(out), 'train', DEMO_SAR,
                      '--rounds', '1', '--warmup', '1', '--batch-size', '2',
                      '--size', '32', '32'])
    result = json.loads(out.read_text())
    rows = {row['variant']: row for row in result['rows']}
    assert list(rows) == ['plain', 'anchors', 'anchors, no label checks']
    assert rows['plain']['x_plain'] == 1.0
    for row in rows.values():
        assert row['s_per_iter'] > 0 and row['peak_mib'] > 0
        assert len(row['times_s']) == 1
    assert result['size'] == [32, 32] and result['batch_size'] == 2
    assert '| anchors |' in capsys.readouterr().out


def test_train_variants_of_a_segmentation_config():
    cfg = Config.fromfile(DEMO_SAR)
    variants = model_variants(cfg)
    plain = variants['plain']['decode_head']
    assert plain['type'] == cfg.model.decode_head.head.type
    assert 'anchor_losses' not in plain
    assert variants['anchors']['decode_head']['type'] == 'SARHead'
    checks = variants['anchors, no label checks']['decode_head']
    assert checks['validate_labels'] is False
    assert all(loss['validate_labels'] is False
               for loss in checks['anchor_losses'])
    # the plain variant is the plain config's model
    base = Config.fromfile(DEMO_SAR.replace('/sar_', '/'))
    assert variants['plain'] == strip_anchor_losses(base.model)[0]


def test_train_variants_of_a_classification_config_run(capsys):
    cfg = Config.fromfile(CLS_SAR)
    variants = model_variants(cfg)
    assert variants['plain']['head']['anchor_losses'] == []
    assert variants['anchors']['head']['anchor_losses'][0]['type'] == \
        'SARLoss'
    load_tool().main(['--threads', '1', 'train', CLS_SAR, '--rounds', '1',
                      '--warmup', '0', '--batch-size', '4', '--size', '32',
                      '32', '--variants', 'anchors'])
    assert '| plain |' in capsys.readouterr().out


def test_a_config_without_anchor_losses_is_refused():
    cfg = Config.fromfile(DEMO_SAR.replace('/sar_', '/'))
    with pytest.raises(ValueError, match='no anchor losses'):
        model_variants(cfg)

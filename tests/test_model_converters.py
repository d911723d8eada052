"""tools/model_converters: ``sar2mmseg.py`` (a checkpoint trained with
SARHead -> a deploy checkpoint, without the anchor-loss entries, that stock
MMSeg loads weights-only without the plug-in) and ``sar_ref2plugin.py`` (a checkpoint of the reference
implementation, geyanqi/SAR on MMSeg 0.29 -> the plug-in's layout).

The end-to-end test trains the SAR demo for two iterations through MMEngine's
Runner, converts the runner checkpoint from the command line and predicts
with it in a fresh interpreter that never imports ``sar_plugin``.
"""
import fractions
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from conftest import REPO_ROOT
from sar_plugin.heads import SARHead
from sar_plugin.utils import prepare_config, sync_bn_to_bn
from sar_plugin.utils.checkpoint import load_checkpoint_file

TOOLS = osp.join(REPO_ROOT, 'tools', 'model_converters')
SAR_DEMO = osp.join(REPO_ROOT, 'configs', 'demo',
                    'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
PLAIN_MODEL = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                       'fcn_r18s-d8.py')
K, C = 8, 64  # classes and decode-head channels of the demo model
S = 'decode_head.anchor_losses.0.'  # the demo's SARLoss


def load_tool(name):
    """Import a converter script as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f'_model_converter_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sar2mmseg = load_tool('sar2mmseg')
ref2plugin = load_tool('sar_ref2plugin')


def run_cli(script, *args, env=None):
    return subprocess.run(
        [sys.executable, osp.join(TOOLS, script)] + [str(a) for a in args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)


def build_sar_demo_model(cfg_options=None):
    cfg = Config.fromfile(SAR_DEMO)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    sync_bn_to_bn(cfg.model)
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


def predict(model, img):
    """Segmentation logits and labels of one uint8 image (test_step: data
    preprocessor, whole inference, post-processing)."""
    hw = tuple(img.shape[-2:])
    sample = SegDataSample(metainfo=dict(img_shape=hw, ori_shape=hw))
    model.eval()
    with torch.no_grad():
        out = model.test_step(dict(inputs=[img], data_samples=[sample]))[0]
    return out.seg_logits.data, out.pred_sem_seg.data


def randomised(state_dict, seed):
    """A copy with every tensor replaced by distinct random values of the
    same shape and dtype (so that equality checks mean something)."""
    gen = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for key, value in state_dict.items():
        if value.is_floating_point():
            out[key] = torch.randn(value.shape, generator=gen).to(value.dtype)
            if key.endswith('running_var'):
                out[key] = out[key].abs() + 0.5
        elif value.dtype == torch.bool:
            out[key] = torch.randint(0, 2, value.shape, generator=gen).bool()
        else:
            out[key] = torch.randint(
                1, 1000, value.shape, generator=gen).to(value.dtype)
    return out


def is_plain(value):
    if value is None or type(value) in (str, int, float, bool):
        return True
    if type(value) is list:
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) in (str, int) and is_plain(v)
                   for k, v in value.items())
    return False


# ------------------------------------------------------------ sar2mmseg
@pytest.fixture(scope='module')
def sar_runner_checkpoint(tmp_path_factory):
    """A runner checkpoint of the SAR demo after two training iterations on
    tiny generated data (meta, state_dict, message_hub, optimizer,
    param_schedulers)."""
    root = tmp_path_factory.mktemp('sar_run')
    cfg = Config.fromfile(SAR_DEMO)
    opts = {'work_dir': str(root / 'work')}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = str(root / 'data')
        opts[f'{loader}.dataset.num_train'] = 4
        opts[f'{loader}.dataset.num_val'] = 2
        opts[f'{loader}.dataset.num_test'] = 2
        opts[f'{loader}.dataset.size'] = (64, 64)
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
    opts.update({
        'train_dataloader.batch_size': 2,
        'train_cfg.max_iters': 2,
        'train_cfg.val_begin': 100,  # no validation
        'default_hooks.checkpoint.interval': 2,
    })
    cfg.merge_from_dict(opts)
    prepare_config(cfg)
    Runner.from_cfg(cfg).train()
    path = root / 'work' / 'iter_2.pth'
    assert path.is_file()
    return path


# runs in a fresh interpreter: stock MMSeg only, weights-only loading forced
PLAIN_SCRIPT = r'''
import sys
import torch
ckpt_path, sar_path, img_path, out_path, model_cfg = sys.argv[1:]
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

register_all_modules(init_default_scope=True)
raw = torch.load(ckpt_path, map_location='cpu', weights_only=True)
try:  # the SAR runner checkpoint needs the plug-in's allow-list
    torch.load(sar_path, map_location='cpu', weights_only=True)
    sar_loads = True
except Exception:
    sar_loads = False

def to_bn(node):
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            to_bn(value)

cfg = Config.fromfile(model_cfg)
assert 'custom_imports' not in cfg, cfg.get('custom_imports')
model_cfg = cfg.model  # a ConfigDict, as MMSeg's tools pass it
to_bn(model_cfg)
model = MODELS.build(model_cfg)
assert type(model.decode_head).__name__ == 'FCNHead'
load_checkpoint(model, ckpt_path, map_location='cpu', strict=True)
model.eval()
img = torch.load(img_path, weights_only=True)
hw = tuple(img.shape[-2:])
sample = SegDataSample(metainfo=dict(img_shape=hw, ori_shape=hw))
with torch.no_grad():
    out = model.test_step(dict(inputs=[img], data_samples=[sample]))[0]
torch.save(dict(
    logits=out.seg_logits.data, pred=out.pred_sem_seg.data,
    meta=raw['meta'], top_level=sorted(raw),
    sar_loads=sar_loads,
    plugin_imported='sar_plugin' in sys.modules), out_path)
'''


def test_sar2mmseg_deploy_checkpoint_predicts_without_plugin(
        sar_runner_checkpoint, tmp_path):
    src = sar_runner_checkpoint
    sar_ckpt = load_checkpoint_file(src)
    assert {'meta', 'state_dict', 'message_hub', 'optimizer',
            'param_schedulers'} <= set(sar_ckpt)
    sar_sd = sar_ckpt['state_dict']
    n_loss = sum(k.startswith('decode_head.anchor_losses.') for k in sar_sd)
    assert n_loss > 0

    dst = tmp_path / 'deploy' / 'plain.pth'
    proc = run_cli('sar2mmseg.py', src, dst)
    assert proc.returncode == 0, proc.stderr
    assert f'dropped {n_loss} anchor-loss entries' in proc.stdout

    # the state dict, entry by entry
    out = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(out) == {'meta', 'state_dict'}
    plain_sd = out['state_dict']
    assert len(plain_sd) == len(sar_sd) - n_loss
    for key, value in sar_sd.items():
        if key.startswith('decode_head.anchor_losses.'):
            continue
        assert torch.equal(plain_sd[key], value), key
    assert not any('anchor_losses' in k for k in plain_sd)
    # nothing renamed: the deploy state dict is the SAR one, minus the losses
    assert list(plain_sd) == [k for k in sar_sd if 'anchor_losses' not in k]

    # the SAR model in this process: IN loaded strictly, fixed input
    img = torch.randint(0, 256, (3, 64, 80),
                        generator=torch.Generator().manual_seed(1),
                        dtype=torch.uint8)
    img_path = tmp_path / 'img.pt'
    torch.save(img, img_path)
    sar_model = build_sar_demo_model()
    assert isinstance(sar_model.decode_head, SARHead)
    load_checkpoint(sar_model, str(src), map_location='cpu', strict=True)
    sar_logits, sar_pred = predict(sar_model, img)

    # stock MMSeg in a fresh interpreter
    script = tmp_path / 'plain_predict.py'
    script.write_text(PLAIN_SCRIPT)
    result_path = tmp_path / 'plain_result.pt'
    env = dict(os.environ, TORCH_FORCE_WEIGHTS_ONLY_LOAD='1')
    proc = subprocess.run(
        [sys.executable, str(script), str(dst), str(src), str(img_path),
         str(result_path), PLAIN_MODEL],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
        env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = torch.load(result_path, weights_only=True)
    assert result['plugin_imported'] is False
    assert result['sar_loads'] is False  # the conversion was needed
    assert result['top_level'] == ['meta', 'state_dict']
    assert is_plain(result['meta'])
    assert result['meta']['dataset_meta']['classes'] == list(
        sar_ckpt['meta']['dataset_meta']['classes'])
    assert result['meta']['converted_from']['tool'] == 'sar2mmseg'
    assert result['logits'].shape == sar_logits.shape == (K, 64, 80)
    torch.testing.assert_close(result['logits'], sar_logits, rtol=0,
                               atol=1e-6)
    assert torch.equal(result['pred'], sar_pred)


def tiny_cascade_cfg(sar):
    """A tiny OCRNet-style CascadeEncoderDecoder (FCN then OCR) with an
    auxiliary FCN head; the OCR head wrapped in a SARHead when ``sar``."""
    bn = dict(type='BN', requires_grad=True)
    concat = dict(in_channels=[8, 16, 32, 64], in_index=(0, 1, 2, 3),
                  input_transform='resize_concat', num_classes=5,
                  norm_cfg=bn, align_corners=False)
    ocr = dict(type='OCRHead', channels=8, ocr_channels=8, dropout_ratio=0.1,
               **concat)
    if sar:
        ocr = dict(type='SARHead', head=ocr,
                   anchor_losses=[dict(type='SARLoss', norm_cfg=bn)])
    return dict(
        type='CascadeEncoderDecoder',
        num_stages=2,
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='ResNetV1c', depth=18, base_channels=8,
                      stem_channels=8, strides=(1, 2, 2, 1),
                      dilations=(1, 1, 1, 2), norm_cfg=bn),
        decode_head=[
            dict(type='FCNHead', channels=12, kernel_size=1, num_convs=1,
                 concat_input=False, dropout_ratio=-1, **concat), ocr
        ],
        auxiliary_head=dict(type='FCNHead', in_channels=32, in_index=2,
                            channels=8, num_convs=1, num_classes=5,
                            norm_cfg=bn),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def test_sar2mmseg_cascade_drops_only_anchor_loss_entries():
    init_default_scope('mmseg')
    sar = MODELS.build(tiny_cascade_cfg(sar=True))
    plain = MODELS.build(tiny_cascade_cfg(sar=False))
    sar_sd = randomised(sar.state_dict(), seed=3)
    sar_sd._metadata = sar.state_dict()._metadata
    assert any(k.startswith('decode_head.1.anchor_losses.0.projector.')
               for k in sar_sd)
    meta = dict(dataset_meta=dict(classes=('a', 'b', 'c', 'd', 'e')))
    out, report = sar2mmseg.convert_checkpoint(
        dict(meta=meta, state_dict=sar_sd, optimizer={}), 'ocr.pth')
    assert report['dropped_entries'] == ['optimizer']
    n_loss = sum('.anchor_losses.' in k for k in sar_sd)
    assert len(report['dropped']) == n_loss > 0

    plain_sd = out['state_dict']
    assert list(plain_sd) == list(plain.state_dict())
    plain.load_state_dict(plain_sd, strict=True)
    loaded = plain.state_dict()
    for key, value in sar_sd.items():
        if '.anchor_losses.' in key:
            continue
        assert torch.equal(loaded[key], value), key
    # module metadata: the anchor losses' entries dropped, nothing renamed
    metadata = plain_sd._metadata
    assert 'decode_head.1.conv_seg' in metadata
    assert not any('anchor_losses' in k for k in metadata)
    assert set(metadata) == set(plain.state_dict()._metadata)
    assert out['meta']['dataset_meta']['classes'] == ['a', 'b', 'c', 'd', 'e']


def test_sar2mmseg_meta_is_made_plain():
    sd = OrderedDict([
        ('backbone.w', torch.ones(2)),
        ('decode_head.conv_seg.weight', torch.ones(3, 2)),
        ('decode_head.anchor_losses.0.anchors', torch.ones(3, 2)),
    ])
    meta = dict(
        dataset_meta=dict(classes=('x', 'y', 'z'),
                          palette=np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                                           dtype=np.uint8),
                          train_class_counts=[np.int64(5), 3, 1],
                          label_map=None),
        seed=np.int32(7), lr=np.float64(0.5), odd=fractions.Fraction(1, 3),
        steps={1, 2})
    out, report = sar2mmseg.convert_checkpoint(dict(meta=meta, state_dict=sd))
    meta = out['meta']
    assert is_plain(meta)
    assert meta['dataset_meta'] == dict(
        classes=['x', 'y', 'z'], palette=[[1, 2, 3], [4, 5, 6], [7, 8, 9]],
        train_class_counts=[5, 3, 1], label_map=None)
    assert meta['seed'] == 7 and meta['lr'] == 0.5
    assert 'odd' not in meta and 'steps' not in meta
    assert sorted(report['dropped_meta']) == ['meta.odd (Fraction)',
                                              'meta.steps (set)']
    assert list(out['state_dict']) == [
        'backbone.w', 'decode_head.conv_seg.weight'
    ]


def test_sar2mmseg_refusals(tmp_path, capsys):
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint\n')
    listed = tmp_path / 'list.pth'
    torch.save([1, 2, 3], listed)
    nested = tmp_path / 'nested.pth'  # the layout of sar_plugin < 0.2
    torch.save(dict(meta={}, state_dict={
        'backbone.w': torch.ones(1),
        'decode_head.head.conv_seg.weight': torch.ones(2, 1, 1, 1),
        'decode_head.anchor_losses.0.anchors': torch.ones(2, 1)}), nested)
    cases = [(tmp_path / 'missing.pth', 'no such file'),
             (text, 'is not a checkpoint'),
             (listed, 'is not a checkpoint'),
             (nested, 'nested layout of sar_plugin < 0.2')]
    for src, reason in cases:
        dst = tmp_path / 'out.pth'
        assert sar2mmseg.main([str(src), str(dst)]) == 1
        err = capsys.readouterr().err
        assert str(src) in err and reason in err, err
        assert not dst.exists()
    # and from the command line: a non-zero exit status
    proc = run_cli('sar2mmseg.py', nested, tmp_path / 'out.pth')
    assert proc.returncode != 0
    assert str(nested) in proc.stderr and 'nested layout' in proc.stderr
    # issue 21, case 13: OUT a directory is named
    good = tmp_path / 'good.pth'
    torch.save(dict(meta={}, state_dict={'w': torch.ones(1)}), good)
    folder = tmp_path / 'folder'
    folder.mkdir()
    assert sar2mmseg.main([str(good), str(folder)]) == 1
    err = capsys.readouterr().err
    assert f'{folder}: OUT is a directory' in err, err


def test_sar2mmseg_plain_checkpoint_is_deployed_unchanged(tmp_path):
    """A plain runner checkpoint (no anchor losses) deploys too: the state
    dict as it is, for torch >= 2.6's weights-only loading."""
    sd = OrderedDict([('backbone.w', torch.ones(1)),
                      ('decode_head.conv_seg.weight', torch.ones(2, 1, 1, 1))])
    out, report = sar2mmseg.convert_checkpoint(dict(meta={}, state_dict=sd))
    assert report['dropped'] == [] and list(out['state_dict']) == list(sd)


def test_help_texts(capsys):
    for tool in (sar2mmseg, ref2plugin):
        with pytest.raises(SystemExit) as exit_info:
            tool.parse_args(['--help'])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert 'IN' in text and 'OUT' in text
    assert '--allow-unmapped' in text and '--config' in text


# ------------------------------------------------------- sar_ref2plugin
def reference_sar_entries(k, c, gen, update_flag=1):
    """The reference segmentor's own entries (geyanqi/SAR@2b9747e,
    mmseg/models/segmentors/sar.py lines 49-67) and, for each, the
    plug-in's key below the SARLoss it must land on (None: dropped)."""
    entries = OrderedDict()  # reference key -> (tensor, our key)

    def rand(*shape):
        return torch.randn(shape, generator=gen)

    entries['random_center'] = (rand(k, c), 'anchors')
    entries['center_lbl'] = (torch.arange(k), None)
    entries['local_iter'] = (torch.tensor([1234]), None)
    linear = [('projecter_linear.0', 'projector.fc1'),
              ('projecter_linear.3', 'projector.fc2')]
    norms = [('projecter_linear.1', 'projector.norm1'),
             ('projecter_linear.4', 'projector.norm2'),
             ('projecter.bn', 'projector.conv.bn')]
    for ref, ours in linear:
        entries[f'{ref}.weight'] = (rand(c, c), f'{ours}.weight')
        entries[f'{ref}.bias'] = (rand(c), f'{ours}.bias')
    for ref, ours in norms:
        for name in ('weight', 'bias', 'running_mean'):
            entries[f'{ref}.{name}'] = (rand(c), f'{ours}.{name}')
        entries[f'{ref}.running_var'] = (rand(c).abs() + 0.5,
                                         f'{ours}.running_var')
        entries[f'{ref}.num_batches_tracked'] = (
            torch.randint(1, 10**6, (), generator=gen),
            f'{ours}.num_batches_tracked')
    entries['projecter.conv.weight'] = (rand(c, c, 1, 1),
                                        'projector.conv.conv.weight')
    entries['update_flag'] = (torch.tensor(update_flag), None)
    entries['momentum_center_feat'] = (rand(k, c), 'semantic_anchors')
    return entries


@pytest.fixture(scope='module')
def demo_sar_state():
    """State dict of the SAR demo model (keys and shapes: K=8, C=64)."""
    return build_sar_demo_model().state_dict()


def reference_checkpoint(sar_state, seed=0, update_flag=1):
    """A checkpoint in the reference layout for the demo's architecture,
    with random values, and the expected plug-in state dict."""
    gen = torch.Generator().manual_seed(seed)
    ref_sd = OrderedDict()
    expected = OrderedDict()
    for key, value in randomised(sar_state, seed).items():
        if key.startswith('decode_head.anchor_losses.'):
            continue
        ref_sd[key] = value
        expected[key] = value
    for ref_key, (value, ours) in reference_sar_entries(
            K, C, gen, update_flag).items():
        ref_sd[ref_key] = value
        if ours is not None:
            expected[S + ours] = value
    expected[S + 'gate_open'] = torch.tensor(bool(update_flag))
    expected[S + 'num_updates'] = torch.tensor(update_flag, dtype=torch.long)
    meta = dict(CLASSES=tuple(f'c{i}' for i in range(K)),
                PALETTE=[[i, 2 * i, 3 * i] for i in range(K)],
                mmseg_version='0.29.1', iter=80000, seed=1270964153,
                exp_name='hrnet_city_SAR.py',
                config="model = dict(type='SAR')",
                env_info='sys.platform: linux')
    optimizer = dict(state={}, param_groups=[dict(lr=0.01, params=[0, 1])])
    return dict(meta=meta, state_dict=ref_sd, optimizer=optimizer), expected


def test_ref2plugin_fills_every_entry_of_the_plugin_model(
        demo_sar_state, tmp_path):
    ckpt, expected = reference_checkpoint(demo_sar_state)
    assert set(expected) == set(demo_sar_state)  # the test's map is complete
    src, dst = tmp_path / 'ref.pth', tmp_path / 'conv' / 'sar.pth'
    torch.save(ckpt, src)
    proc = run_cli('sar_ref2plugin.py', src, dst, '--config', SAR_DEMO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'dropped center_lbl' in proc.stdout
    assert 'dropped local_iter' in proc.stdout
    assert 'every key and shape matches the model' in proc.stdout

    out = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(out) == {'meta', 'state_dict'}
    # the converted keys are exactly the model's
    assert set(out['state_dict']) == set(demo_sar_state)
    model = build_sar_demo_model()
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    state = model.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert state[key].dtype == value.dtype, key
        assert torch.equal(state[key], value), key
    loss = model.decode_head.anchor_losses[0]
    assert bool(loss.gate_open) and int(loss.num_updates) == 1
    meta = out['meta']
    assert is_plain(meta)
    assert meta['dataset_meta'] == dict(
        classes=list(ckpt['meta']['CLASSES']),
        palette=ckpt['meta']['PALETTE'])
    info = meta['converted_from']
    assert info['local_iter'] == 1234 and info['update_flag'] == 1
    assert info['reference_meta']['mmseg_version'] == '0.29.1'
    assert info['reference'].startswith('geyanqi/SAR@2b9747eb')


def test_ref2plugin_closed_gate_and_cascade_layout():
    gen = torch.Generator().manual_seed(0)
    k, c = 3, 4
    sd = OrderedDict([
        ('backbone.conv1.weight', torch.randn(2, 3, 1, 1, generator=gen)),
        ('decode_head.0.conv_seg.weight', torch.randn(k, 5, 1, 1)),
        ('decode_head.1.bottleneck.conv.weight', torch.randn(c, 6, 1, 1)),
        ('decode_head.1.conv_seg.weight', torch.randn(k, c, 1, 1)),
        ('decode_head.1.conv_seg.bias', torch.randn(k)),
        ('auxiliary_head.conv_seg.weight', torch.randn(k, 2, 1, 1)),
    ])
    entries = reference_sar_entries(k, c, gen, update_flag=0)
    sd.update((key, value) for key, (value, _) in entries.items())
    out, report = ref2plugin.convert_state_dict(sd, 'ocr.pth')
    loss = 'decode_head.1.anchor_losses.0.'
    assert report['head_prefix'] == 'decode_head.1.'
    assert sorted(report['dropped']) == ['center_lbl', 'local_iter']
    for key in ('backbone.conv1.weight', 'decode_head.0.conv_seg.weight',
                'auxiliary_head.conv_seg.weight'):
        assert out[key] is sd[key]
    for key in ('bottleneck.conv.weight', 'conv_seg.weight',
                'conv_seg.bias'):
        assert out['decode_head.1.' + key] is sd['decode_head.1.' + key]
    for ref_key, (value, ours) in entries.items():
        if ours is not None:
            assert out[loss + ours] is value, ref_key
    assert out[loss + 'gate_open'].dtype == torch.bool
    assert not bool(out[loss + 'gate_open'])
    assert out[loss + 'num_updates'].dtype == torch.long
    assert int(out[loss + 'num_updates']) == 0
    assert len(out) == 6 + (len(entries) - 3) + 2


def test_ref2plugin_unmapped_keys_are_refused_unless_allowed(
        demo_sar_state, tmp_path, capsys):
    ckpt, expected = reference_checkpoint(demo_sar_state, seed=1)
    ckpt['state_dict']['projecter_linear.6.weight'] = torch.ones(C, C)
    ckpt['state_dict']['teacher.fc.weight'] = torch.ones(2)
    src, dst = tmp_path / 'ref.pth', tmp_path / 'sar.pth'
    torch.save(ckpt, src)
    assert ref2plugin.main([str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert str(src) in err
    assert 'projecter_linear.6.weight' in err and 'teacher.fc.weight' in err
    assert '--allow-unmapped' in err
    assert not dst.exists()

    assert ref2plugin.main([str(src), str(dst), '--allow-unmapped']) == 0
    outtext = capsys.readouterr().out
    assert 'left out 2 unmapped keys' in outtext
    out = torch.load(dst, weights_only=True)['state_dict']
    assert set(out) == set(expected)


def test_ref2plugin_refusals(demo_sar_state, tmp_path, capsys):
    ckpt, _ = reference_checkpoint(demo_sar_state, seed=2)
    ref_sd = ckpt['state_dict']

    def refused(state_dict, reason, *extra):
        src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'
        torch.save(dict(meta={}, state_dict=state_dict), src)
        assert ref2plugin.main([str(src), str(dst), *extra]) == 1
        err = capsys.readouterr().err
        assert str(src) in err and reason in err, err
        assert not dst.exists()

    # already the plug-in's layout
    refused(randomised(demo_sar_state, 0), 'already in the sar_plugin layout')
    # a plain MMSeg checkpoint (no reference SAR entries)
    plain = OrderedDict((k, v) for k, v in ref_sd.items()
                        if k.startswith(('backbone.', 'decode_head.')))
    refused(plain, 'no entries of the reference SAR segmentor')
    # an incomplete one
    partial = OrderedDict(ref_sd)
    del partial['projecter.bn.running_var']
    refused(partial, 'lacks reference SAR entries: projecter.bn.running_var')
    # shapes that do not fit K x C
    wrong = OrderedDict(ref_sd)
    wrong['projecter_linear.0.weight'] = torch.ones(C, C + 1)
    refused(wrong, 'projecter_linear.0.weight (64, 65) (expected (64, 64))')
    # a config whose model differs (5 classes instead of 8)
    refused(ref_sd, 'does not fit the model of', '--config', SAR_DEMO,
            '--cfg-options', 'model.decode_head.head.num_classes=5')
    err_missing = tmp_path / 'missing.pth'
    assert ref2plugin.main([str(err_missing), str(tmp_path / 'o.pth')]) == 1
    assert f'{err_missing}: no such file' in capsys.readouterr().err

"""Plug-and-play: ``import sar_plugin`` only adds; a SAR model is an MMSeg
model; a run is defined by its config.

- The import changes no registry entry, class attribute, torch safe-globals
  list or matplotlib state of mmseg/mmengine (a subprocess snapshots them
  before and after).
- In a fresh interpreter that never imports ``sar_plugin``, MMSeg's own
  ``init_model`` with the *plain* config scores a SAR checkpoint with logits
  ``torch.equal`` to the SAR model's: with torch's legacy loading and,
  under ``weights_only``, through the deploy tool (FCN and DDRNet).
- A plain checkpoint ``load_from`` into a SAR model misses only the
  anchor-loss entries.
- The shipped CamVid SAR config trained with MMSeg 1.2.2's own
  ``tools/train.py`` and with the plug-in's logs the same losses and writes
  the same long-tail records, and a killed run resumed through either is
  bitwise equal to the uninterrupted run.
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmseg.registry import MODELS

from conftest import REPO_ROOT
from sar_plugin.heads import SARHead
from sar_plugin.utils import prepare_config, sync_bn_to_bn
from sar_plugin.utils.checkpoint import load_checkpoint_file
from test_tools import cli_options, tiny_options

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
PLAIN_DEMO = osp.join(DEMO, 'fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
SAR_DEMO = osp.join(DEMO, 'sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py')
CAMVID_SAR = osp.join(REPO_ROOT, 'configs', 'camvid',
                      'sar_fcn_m-v2-d8_1xb4-4k_camvid-180x240.py')
MMSEG_TRAIN = osp.join(
    osp.dirname(__import__('mmseg').__file__), '.mim', 'tools', 'train.py')


def run(args, cwd, env=None, timeout=900):
    proc = subprocess.run([sys.executable] + args, cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


# ------------------------------------------------------- the import adds
SNAPSHOT = r'''
import inspect, sys, json
import matplotlib
import torch
import mmengine, mmengine.registry, mmseg
from mmseg.utils import register_all_modules
register_all_modules(init_default_scope=False)
import mmseg.apis, mmseg.evaluation, mmseg.visualization, mmseg.engine
import mmengine.runner, mmengine.hooks, mmengine.logging

def registries():
    out = {}
    seen = set()
    def walk(reg):
        if id(reg) in seen:
            return
        seen.add(id(reg))
        out[(reg.scope, reg.name)] = dict(reg._module_dict)
        for child in reg._children.values():
            walk(child)
    for value in vars(mmengine.registry).values():
        if isinstance(value, mmengine.registry.Registry):
            walk(value)
    return out

def classes():
    out = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith(('mmseg', 'mmengine', 'mmcv')) or \
                module is None:
            continue
        for attr, value in list(vars(module).items()):
            if inspect.isclass(value) and value.__module__ == name:
                out[f'{name}.{attr}'] = (value, dict(vars(value)))
    for cls in (torch.nn.Module, torch.Tensor, torch.optim.Optimizer):
        out[f'torch.{cls.__qualname__}'] = (cls, dict(vars(cls)))
    return out

def module_globals():
    return {name: dict(vars(module)) for name, module in
            list(sys.modules.items())
            if name.startswith(('mmseg', 'mmengine', 'mmcv')) and module}

before_reg, before_cls = registries(), classes()
before_glob = module_globals()
before_safe = list(torch.serialization.get_safe_globals())
before_backend = matplotlib.get_backend()
before_rc = dict(matplotlib.rcParams)
before_pyplot = 'matplotlib.pyplot' in sys.modules

import sar_plugin
import sar_plugin.report, sar_plugin.report.plots

problems, added = [], []
after_reg = registries()
for key, entries in before_reg.items():
    now = after_reg.get(key, {})
    for name, obj in entries.items():
        if now.get(name) is not obj:
            problems.append(f'registry {key}: {name} replaced')
    for name in set(now) - set(entries):
        added.append(f'{key[0]}.{name}')
        if not now[name].__module__.startswith('sar_plugin'):
            problems.append(f'registry {key}: {name} added from '
                            f'{now[name].__module__}')
for key in set(after_reg) - set(before_reg):
    added += [f'{key[0]}.{name}' for name in after_reg[key]]
new_scopes = sorted({k[0] for k in after_reg} - {k[0] for k in before_reg})
for qualname, (cls, attrs) in before_cls.items():
    now = dict(vars(cls))
    for attr in set(attrs) | set(now):
        if attrs.get(attr, KeyError) is not now.get(attr, KeyError):
            problems.append(f'class {qualname}: attribute {attr} changed')
for name, attrs in before_glob.items():
    now = vars(sys.modules[name])
    for attr, value in attrs.items():
        if now.get(attr, KeyError) is not value:
            problems.append(f'module {name}: global {attr} changed')
if list(torch.serialization.get_safe_globals()) != before_safe:
    problems.append('torch safe globals changed')
if matplotlib.get_backend() != before_backend:
    problems.append('matplotlib backend changed')
if dict(matplotlib.rcParams) != before_rc:
    problems.append('matplotlib rcParams changed')
if ('matplotlib.pyplot' in sys.modules) != before_pyplot:
    problems.append('matplotlib.pyplot imported')
print(json.dumps(dict(problems=problems, added=sorted(added),
                      new_scopes=new_scopes,
                      classes=len(before_cls), registries=len(before_reg))))
'''


def test_import_changes_nothing_it_does_not_own(tmp_path):
    out = run(['-c', SNAPSHOT], tmp_path, env=dict(MPLBACKEND='svg'))
    report = json.loads(out.strip().splitlines()[-1])
    assert report['problems'] == []
    # it did snapshot something, and it did add its names
    assert report['classes'] > 500 and report['registries'] > 20
    assert 'mmseg.SARHead' in report['added']
    assert 'mmseg.SARLoss' in report['added']
    # the fixes under MMSeg's names live in sar_plugin's own scope only
    assert not {'mmseg.CrossEntropyLoss', 'mmseg.LoadAnnotations',
                'mmseg.CityscapesDataset'} & set(report['added'])
    assert 'sar_plugin.LoadAnnotations' in report['added']
    assert report['new_scopes'] == ['sar_plugin']


def test_fixes_are_reached_through_the_scope_only():
    from mmseg.datasets.transforms import LoadAnnotations as MMSegLoad
    from mmseg.models.losses import CrossEntropyLoss as MMSegCE
    from mmseg.registry import TRANSFORMS

    from sar_plugin.datasets.transforms import LoadAnnotations
    from sar_plugin.losses.seg_cross_entropy import CrossEntropyLoss
    assert MODELS.get('CrossEntropyLoss') is MMSegCE
    assert TRANSFORMS.get('LoadAnnotations') is MMSegLoad
    assert MODELS.get('sar_plugin.CrossEntropyLoss') is CrossEntropyLoss
    init_default_scope('sar_plugin')
    from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
    assert type(ROOT_TRANSFORMS.build(dict(type='LoadAnnotations'))) is \
        LoadAnnotations
    assert type(MODELS.build(dict(type='CrossEntropyLoss'))) is \
        CrossEntropyLoss
    init_default_scope('mmseg')
    assert type(ROOT_TRANSFORMS.build(dict(type='LoadAnnotations'))) is \
        MMSegLoad


# ------------------------------------- MMSeg scores SAR checkpoints alone
INIT_MODEL = r'''
import sys
import torch
from mmseg.apis import init_model
config, checkpoint, image, out = sys.argv[1:]
model = init_model(config, checkpoint, device='cpu')
x = torch.load(image, weights_only=True)
with torch.no_grad():
    logits = model(x, mode='tensor')
torch.save(dict(logits=logits, head=type(model.decode_head).__name__,
                plugin='sar_plugin' in sys.modules), out)
'''


def plain_config_file(model_cfg, path):
    """``model_cfg`` as a config file MMSeg reads without the plug-in:
    MMSeg's scope, BN, no custom imports."""
    model_cfg = Config(dict(model=model_cfg)).model
    sync_bn_to_bn(model_cfg)

    def strip(node):
        if isinstance(node, dict):
            node.pop('_scope_', None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)
    strip(model_cfg)
    Config(dict(model=model_cfg.to_dict(), default_scope='mmseg')).dump(
        str(path))
    return str(path)


def tiny_ddrnet(sar):
    bn = dict(type='BN', requires_grad=True)
    head = dict(type='DDRHead', in_channels=8 * 4, channels=16,
                dropout_ratio=0., num_classes=4, align_corners=False,
                norm_cfg=bn,
                loss_decode=[dict(type='CrossEntropyLoss', loss_weight=1.0),
                             dict(type='CrossEntropyLoss', loss_weight=0.4)])
    if sar:
        head = dict(type='SARHead', head=head,
                    anchor_losses=[dict(type='SARLoss')])
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor',
                               mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                               pad_val=0, seg_pad_val=255),
        backbone=dict(type='DDRNet', in_channels=3, channels=8,
                      ppm_channels=16, norm_cfg=bn, align_corners=False),
        decode_head=head, train_cfg=dict(), test_cfg=dict(mode='whole'))


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """A runner checkpoint of the SAR demo after two iterations (message
    hub, optimizer...), the SAR model it came from, and the plain model
    config."""
    root = tmp_path_factory.mktemp('demo')
    cfg = Config.fromfile(SAR_DEMO)
    cfg.merge_from_dict(tiny_options(str(root / 'data')))
    cfg.merge_from_dict({'train_cfg.max_iters': 2, 'train_cfg.val_begin': 99,
                         'default_hooks.checkpoint.interval': 2})
    cfg.work_dir = str(root / 'work')
    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return str(root / 'work' / 'iter_2.pth'), runner.model, \
        Config.fromfile(PLAIN_DEMO).model


def ddrnet_checkpoint(path):
    init_default_scope('sar_plugin')
    torch.manual_seed(0)
    model = MODELS.build(tiny_ddrnet(sar=True))
    model.init_weights()
    assert isinstance(model.decode_head, SARHead)
    # the anchor state moved on, as after training
    for name, buf in model.decode_head.anchor_losses.named_buffers():
        if buf.is_floating_point():
            buf.add_(0.5)
    torch.save(dict(meta=dict(iter=1), state_dict=model.state_dict()), path)
    return str(path), model, tiny_ddrnet(sar=False)


@pytest.mark.parametrize('arch', ['fcn_demo', 'ddrnet'])
def test_mmseg_init_model_scores_sar_checkpoint_without_plugin(
        arch, demo_checkpoint, tmp_path):
    if arch == 'fcn_demo':
        checkpoint, sar_model, plain_model_cfg = demo_checkpoint
    else:
        checkpoint, sar_model, plain_model_cfg = ddrnet_checkpoint(
            tmp_path / 'ddrnet.pth')
    keys = load_checkpoint_file(checkpoint)['state_dict']
    assert any('.anchor_losses.' in k for k in keys)
    assert not any('.head.conv_seg' in k for k in keys)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    image = tmp_path / 'x.pt'
    torch.save(x, image)
    sar_model.eval()
    with torch.no_grad():
        expected = sar_model(x, mode='tensor')
    config = plain_config_file(plain_model_cfg, tmp_path / 'plain.py')
    script = tmp_path / 'score.py'
    script.write_text(INIT_MODEL)

    # torch's legacy loading, as the official mmcv 2.1.0 GPU wheels' torch
    out = tmp_path / 'legacy.pt'
    log = run([str(script), config, checkpoint, str(image), str(out)],
              tmp_path, env=dict(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1'))
    result = torch.load(out, weights_only=True)
    assert result['plugin'] is False
    assert result['head'] in ('FCNHead', 'DDRHead')
    assert torch.equal(result['logits'], expected)
    # the only key MMEngine reports: the anchor losses, unexpected
    reported = re.findall(r'unexpected key in source state_dict: (.*)', log)
    assert reported and all(
        k.strip().startswith('decode_head.anchor_losses.')
        for k in reported[0].split(','))
    assert 'missing keys in source state_dict' not in log

    # torch >= 2.6 weights-only loading: the deploy checkpoint
    deploy = tmp_path / 'deploy.pth'
    run([osp.join(REPO_ROOT, 'tools', 'model_converters', 'sar2mmseg.py'),
         checkpoint, str(deploy)], tmp_path)
    out = tmp_path / 'deploy.pt'
    log = run([str(script), config, str(deploy), str(image), str(out)],
              tmp_path, env=dict(TORCH_FORCE_WEIGHTS_ONLY_LOAD='1'))
    result = torch.load(out, weights_only=True)
    assert result['plugin'] is False
    assert torch.equal(result['logits'], expected)
    assert 'unexpected key' not in log and 'missing keys' not in log


@pytest.mark.parametrize('arch', ['fcn_demo', 'ddrnet'])
def test_plain_checkpoint_load_from_misses_only_anchor_losses(arch,
                                                              tmp_path):
    init_default_scope('sar_plugin')
    if arch == 'fcn_demo':
        plain_cfg = Config.fromfile(PLAIN_DEMO).model
        sar_cfg = Config.fromfile(SAR_DEMO).model
    else:
        plain_cfg, sar_cfg = tiny_ddrnet(False), tiny_ddrnet(True)
    torch.manual_seed(0)
    plain = MODELS.build(plain_cfg)
    plain.init_weights()
    path = tmp_path / 'released.pth'
    torch.save(dict(meta={}, state_dict=plain.state_dict()), path)
    sar = MODELS.build(sar_cfg)
    with pytest.raises(RuntimeError) as err:  # strict: MMEngine's report
        load_checkpoint(sar, str(path), map_location='cpu', strict=True)
    message = str(err.value)
    missing = re.search(r'missing keys in source state_dict: (.*)',
                        message).group(1).split(', ')
    assert missing and all(k.startswith('decode_head.anchor_losses.')
                           for k in missing)
    assert 'unexpected key' not in message
    for key, value in plain.state_dict().items():
        assert torch.equal(sar.state_dict()[key], value), key


# ----------------------------------------- the run is the config's alone
def write_tiny_camvid(root):
    rng = np.random.default_rng(0)
    for split, names in (('train', ['0001TP_000000', '0006R0_000001',
                                    '0016E5_000002', '0016E5_000003']),
                         ('val', ['0016E5_000010', '0016E5_000011'])):
        for sub in ('img_dir', 'ann_dir'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        for name in names:
            img = rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)
            ann = rng.integers(0, 12, (72, 96), dtype=np.uint8)
            cv2.imwrite(osp.join(root, 'img_dir', split, name + '.png'), img)
            cv2.imwrite(osp.join(root, 'ann_dir', split, name + '.png'), ann)


def camvid_options(data_root, max_iters):
    opts = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = data_root
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
    opts.update({
        'train_dataloader.batch_size': 2,
        'train_cfg.max_iters': max_iters,
        'train_cfg.val_interval': 10,
        'default_hooks.checkpoint.interval': 10,
        'default_hooks.checkpoint.save_best': None,
        'default_hooks.logger.interval': 1,
        'randomness.deterministic': True,
    })
    return cli_options(opts)


def losses_logged(work_dir):
    """Every ``Iter(train)`` line's losses as printed, by iteration."""
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    found = {}
    for log in logs:
        for line in open(log):
            match = re.search(r'Iter\(train\) \[\s*(\d+)/', line)
            if match:
                found[int(match.group(1))] = re.findall(
                    r'((?:decode\.)?(?:loss\w*|acc_seg)): (\S+)', line)
    return found


def records(work_dir):
    out = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*_eval', '**',
                                          '*.json'), recursive=True)):
        rel = osp.relpath(path, work_dir).split(os.sep, 1)[1]
        with open(path) as f:
            data = json.load(f)
        for key in ('time', 'timestamp', 'created', 'log_dir', 'work_dir',
                    'command', 'config_path', 'run'):
            if isinstance(data, dict):
                data.pop(key, None)
        out[rel] = data
    return out


def final_state(path):
    return load_checkpoint_file(path)['state_dict']


def test_mmseg_train_tool_and_ours_give_the_same_run(tmp_path):
    data = str(tmp_path / 'camvid')
    write_tiny_camvid(data)
    tools = {'mmseg': MMSEG_TRAIN,
             'ours': osp.join(REPO_ROOT, 'tools', 'train.py')}
    env = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    for name, tool in tools.items():
        out = run([tool, CAMVID_SAR, '--work-dir', str(tmp_path / name),
                   '--cfg-options'] + camvid_options(data, 20), tmp_path,
                  env=env)
        assert 'trains anchor losses without' not in out, name
    logged = {name: losses_logged(str(tmp_path / name)) for name in tools}
    assert sorted(logged['mmseg']) == list(range(1, 21))
    assert any(k == 'decode.loss_sar_anchor' for k, _ in logged['mmseg'][1])
    assert logged['mmseg'] == logged['ours']
    recs = {name: records(str(tmp_path / name)) for name in tools}
    assert recs['mmseg'] and recs['mmseg'] == recs['ours']
    full = final_state(str(tmp_path / 'mmseg' / 'iter_20.pth'))
    same = final_state(str(tmp_path / 'ours' / 'iter_20.pth'))
    assert all(torch.equal(full[k], same[k]) for k in full)

    # a run killed after its checkpoint at 10, resumed through each tool
    for name, tool in tools.items():
        work = str(tmp_path / f'killed_{name}')
        run([tool, CAMVID_SAR, '--work-dir', work, '--cfg-options'] +
            camvid_options(data, 10), tmp_path, env=env)
        run([tool, CAMVID_SAR, '--work-dir', work, '--resume',
             '--cfg-options'] + camvid_options(data, 20), tmp_path, env=env)
        resumed = final_state(osp.join(work, 'iter_20.pth'))
        assert resumed.keys() == full.keys()
        for key in full:
            assert torch.equal(resumed[key], full[key]), (name, key)
        assert losses_logged(work) == logged['mmseg'], name


def test_a_config_without_the_runtime_hooks_says_so_once(tmp_path):
    cfg = Config.fromfile(SAR_DEMO)
    cfg.merge_from_dict(tiny_options(str(tmp_path / 'data')))
    cfg.merge_from_dict({'train_cfg.max_iters': 2, 'train_cfg.val_begin': 99,
                         'default_hooks.logger.interval': 1})
    cfg.custom_hooks = [dict(type='LongTailEvalHook')]
    cfg.work_dir = str(tmp_path / 'work')
    prepare_config(cfg)
    Runner.from_cfg(cfg).train()
    text = ''.join(open(f).read() for f in
                   glob.glob(str(tmp_path / 'work' / '*' / '*.log')))
    assert text.count('trains anchor losses without RunCheckHook, '
                      'ExactResumeHook, AnchorStateHook') == 1
    assert 'configs/_base_/sar_runtime.py' in text

"""Image classification with the same anchor losses: every shipped config
trains and predicts on tiny data in the real formats; a loss is the same
class in both uses and gives the same result per image and per pixel; the
classification pieces against hand computations; a short CPU training run
beats chance and reports many/medium/few accuracy."""
import copy
import glob
import json
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import METRICS, MODELS
from torch import nn

from conftest import REPO_ROOT
from test_tools import cli_options, run_tool

from sar_plugin.losses import class_balanced_weights
from sar_plugin.datasets import generate_cifar_archive
from sar_plugin.structures import ClsDataSample
from sar_plugin.report import load_run, make_report
from sar_plugin.utils import prepare_config

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'classification',
                                    '*', '*.py')))
CPU_CONFIG = osp.join(REPO_ROOT, 'configs', 'classification', 'synthetic',
                      'resnet20_1xb64-30e_synthetic-cifar10-lt-r100.py')
LOSS_CFGS = {
    'SARLoss': dict(type='SARLoss', norm_cfg=dict(type='BN')),
    'ANCMLoss': dict(type='ANCMLoss', distance='cosine'),
    'HALLoss': dict(type='HALLoss'),
    'LDMATLoss': dict(type='LDMATLoss', max_samples=4096),
    'LargeMarginLoss': dict(type='LargeMarginLoss'),
    'CenterLoss': dict(type='CenterLoss', center_mode='ema'),
}


def test_config_set_is_complete():
    names = {osp.relpath(c, osp.join(REPO_ROOT, 'configs', 'classification'))
             for c in CONFIGS}
    prefixes = ['', 'sar_', 'ancm-euclidean_', 'ancm-cosine_', 'hal_',
                'ldmat_', 'large-margin_', 'center_']
    for rho in (100, 50, 10):
        for p in prefixes:
            assert f'cifar100-lt/{p}resnet32_1xb128-200e_cifar100-lt-r{rho}.py' \
                in names
    for p in prefixes:
        assert f'imagenet-lt/{p}resnet50_8xb64-90e_imagenet-lt.py' in names
    for k in (10, 100):
        for p in ('', 'sar_'):
            assert f'cifar/{p}resnet32_1xb128-200e_cifar{k}.py' in names
    for p in prefixes:
        assert (f'synthetic/{p}resnet20_1xb64-30e_synthetic-cifar10-lt-r100'
                '.py') in names
    assert len(names) == 24 + 8 + 4 + 8


# ------------------------------------------------------------ tiny data
@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls_data')
    generate_cifar_archive(str(root / 'cifar10'), 'cifar10', 6, 1, seed=0)
    generate_cifar_archive(str(root / 'cifar100'), 'cifar100', 3, 1, seed=0)
    # ImageNet-LT layout: images under data_root, "path label" lists
    img_root = root / 'imagenet'
    rng = np.random.default_rng(0)
    lines = {}
    for split, labels in (('train', [0, 0, 0, 1, 999, 5]),
                          ('val', [0, 999]), ('test', [1, 5, 999])):
        rows = []
        for i, label in enumerate(labels):
            rel = f'{split}/n{label:08d}/img {i}.JPEG'  # a space, as in iNat
            os.makedirs(img_root / osp.dirname(rel), exist_ok=True)
            h, w = rng.integers(40, 90, size=2)
            cv2.imwrite(str(img_root / rel),
                        rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            rows.append(f'{rel} {label}')
        lines[split] = rows
        (img_root / f'ImageNet_LT_{split}.txt').write_text(
            '\n'.join(rows) + '\n')
    return root


def tiny_cfg(config, root, work_dir):
    cfg = Config.fromfile(config)
    name = osp.basename(config)
    if 'imagenet' in name:
        data = str(root / 'imagenet')
    elif 'cifar100' in name:
        data = str(root / 'cifar100')
    else:
        data = str(root / 'cifar10')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.dataset.data_root = data
        loader.batch_size = 4
        loader.num_workers = 0
        loader.persistent_workers = False
        if loader.dataset.type == 'SyntheticCIFAR10':
            loader.dataset.num_train_per_class = 6
            loader.dataset.num_test_per_class = 1
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 100
    cfg.default_hooks.checkpoint.save_best = None
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0)]
    prepare_config(cfg)
    return cfg


@pytest.mark.parametrize('config', CONFIGS,
                         ids=[osp.basename(c)[:-3] for c in CONFIGS])
def test_config_trains_one_epoch_and_predicts(config, tiny_data, tmp_path):
    cfg = tiny_cfg(config, tiny_data, tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    # the head's anchor losses are what the config names, nothing else
    head = runner.model.head
    expected = [d['type'] for d in Config.fromfile(config).model.head.get(
        'anchor_losses', None) or []]
    assert [type(m).__name__ for m in head.anchor_losses] == expected
    runner.train()  # one epoch (two iterations or fewer) + validation
    scalars = {k[len('val/'):]: v.current()
               for k, v in runner.message_hub.log_scalars.items()
               if k.startswith('val/')}
    assert 'top1' in scalars and 'mAcc' in scalars
    assert 'feat/fisher' in scalars  # the pooled features were exported
    losses = {k for k in runner.message_hub.log_scalars
              if k.startswith('train/loss')}
    assert 'train/loss_cls' in losses
    if expected:
        assert len(losses) > 2  # loss, loss_cls + the anchor terms
    record = glob.glob(osp.join(cfg.work_dir, '*', 'longtail_eval',
                                'latest.json'))
    assert len(record) == 1


# ------------------------------------------- one loss class, two uses
@pytest.mark.parametrize('name', sorted(LOSS_CFGS))
def test_same_loss_class_in_segmentation_and_classification(name):
    cls_head = MODELS.build(dict(type='AnchorClsHead', num_classes=5,
                                 in_channels=8,
                                 anchor_losses=[LOSS_CFGS[name]]))
    seg_head = MODELS.build(dict(
        type='SARHead',
        head=dict(type='FCNHead', in_channels=8, channels=8, num_convs=1,
                  num_classes=5),
        anchor_losses=[LOSS_CFGS[name]]))
    registered = MODELS.get(name)
    assert type(cls_head.anchor_losses[0]) is registered
    assert type(seg_head.anchor_losses[0]) is registered


@pytest.mark.parametrize('name', sorted(LOSS_CFGS))
def test_per_image_head_equals_per_pixel_call(name):
    """AnchorClsHead's anchor terms on N pooled features equal the same loss
    called per pixel on N x C x 1 x 1 maps with a 1x1-conv classifier holding
    the same weights; gradients and updated buffers agree too."""
    torch.manual_seed(0)
    n, c, k = 12, 8, 5
    head = MODELS.build(dict(type='AnchorClsHead', num_classes=k,
                             in_channels=c, anchor_losses=[LOSS_CFGS[name]]))
    head.init_weights()
    pixel_loss = copy.deepcopy(head.anchor_losses[0])
    conv = nn.Conv2d(c, k, 1)
    with torch.no_grad():
        conv.weight.copy_(head.fc.weight[:, :, None, None])
        conv.bias.copy_(head.fc.bias)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 0, 0, 1, 3])
    samples = [ClsDataSample().set_gt_label(int(y)) for y in labels]
    feat = torch.randn(n, c, dtype=torch.float64)
    head.double()
    pixel_loss.double()
    conv.double()
    x1 = feat.clone().requires_grad_()
    x2 = feat.clone()[:, :, None, None].requires_grad_()
    for _ in range(3):  # several steps: moving buffers must stay in step
        terms = head.loss(x1, samples)
        anchor_terms = {t: v for t, v in terms.items()
                        if t.startswith('loss_') and t != 'loss_cls'}
        out = pixel_loss(x2, labels[:, None, None], classifier=conv)
        if isinstance(out, torch.Tensor):
            out = {pixel_loss.loss_name: out}
        assert set(anchor_terms) == set(out)
        # and the loss's logged scalars (SAR's gate, ...), not losses
        assert set(terms) == ({'loss_cls', 'acc_top1'} | set(out) |
                              set(pixel_loss.log_vars()))
        for t in out:
            assert anchor_terms[t].item() == pytest.approx(out[t].item(),
                                                           rel=1e-9, abs=1e-12)
        g1, = torch.autograd.grad(sum(anchor_terms.values()), x1)
        g2, = torch.autograd.grad(sum(out.values()), x2)
        assert torch.allclose(g1, g2[:, :, 0, 0], rtol=1e-8, atol=1e-12)
    for (b1, v1), (b2, v2) in zip(head.anchor_losses[0].named_buffers(),
                                  pixel_loss.named_buffers()):
        assert b1 == b2
        assert torch.allclose(v1.double(), v2.double()), b1


@pytest.mark.parametrize('name', sorted(LOSS_CFGS))
def test_label_255_is_a_class_for_a_large_head(name):
    """With K > 255 classes (ImageNet-LT, iNaturalist) label 255 is a real
    class: AnchorClsHead fills the losses' ignore_index with one outside
    [0, K), so a sample of class 255 gets a gradient like any other."""
    k, c = 300, 300  # simplex anchors need c >= k - 1
    cfg = dict(LOSS_CFGS[name])
    if name == 'SARLoss':  # the pull needs an open gate
        cfg['gate'] = 'latched'
    head = MODELS.build(dict(type='AnchorClsHead', num_classes=k,
                             in_channels=c, anchor_losses=[cfg]))
    loss = head.anchor_losses[0]
    assert loss.ignore_index == -100
    if name == 'SARLoss':
        loss.gate_open.fill_(True)
        loss.semantic_anchors.normal_()
    labels = torch.tensor([255, 255, 3, 3, 7, 7])
    samples = [ClsDataSample().set_gt_label(int(y)) for y in labels]
    feat = torch.randn(len(labels), c, requires_grad=True)
    terms = head.loss(feat, samples)
    anchor = sum(v for t, v in terms.items()
                 if t.startswith('loss_') and t != 'loss_cls')
    grad, = torch.autograd.grad(anchor, feat, allow_unused=True)
    if grad is None or not anchor.requires_grad:
        pytest.skip(f'{name} gives no feature gradient on its first step')
    assert grad[labels == 255].abs().sum() > 0


# ------------------------------------------------------ pieces vs hand
def test_cls_cross_entropy_label_smoothing_and_balanced_weights():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]],
                          dtype=torch.float64)
    labels = torch.tensor([0, 2])
    loss = MODELS.build(dict(type='ClsCrossEntropyLoss', label_smoothing=0.3,
                             class_weight=[1.0, 2.0, 3.0]))
    logp = logits.log_softmax(1)
    num, den = 0.0, 0.0
    for i, y in enumerate(labels.tolist()):
        target = torch.full((3, ), 0.3 / 3, dtype=torch.float64)
        target[y] += 0.7
        w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        # torch: weighted smoothing term per class, normalised by w[y]
        num += -(w[y] * 0.7 * logp[i, y] + (w * 0.3 / 3 * logp[i]).sum())
        den += w[y]
    assert loss(logits, labels).item() == pytest.approx(float(num / den))
    counts = [100, 10, 1]
    inv = class_balanced_weights(counts)
    assert inv == pytest.approx(np.array([0.01, 0.1, 1.0]) / 0.37)
    eff = class_balanced_weights(counts, beta=0.9)
    ref = np.array([(1 - 0.9) / (1 - 0.9**n) for n in counts])
    assert eff == pytest.approx(ref / ref.mean())
    with pytest.raises(ValueError, match='needs class_counts'):
        MODELS.build(dict(type='ClsCrossEntropyLoss',
                          class_weight='effective'))
    with pytest.raises(ValueError, match='N x K logits and N labels'):
        loss(logits[0], labels)


def test_head_and_classifier_modes_and_errors():
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ResNetCifar', depth=20),
        head=dict(type='AnchorClsHead', num_classes=4)))
    assert model.head.in_channels == 64  # filled from the backbone
    x = torch.randn(3, 3, 32, 32)
    samples = [ClsDataSample().set_gt_label(i) for i in (0, 1, 3)]
    logits = model(x, mode='tensor')
    assert logits.shape == (3, 4)
    losses = model(x, samples, mode='loss')
    assert set(losses) == {'loss_cls', 'acc_top1'}
    assert losses['loss_cls'].item() == pytest.approx(
        F.cross_entropy(logits, torch.tensor([0, 1, 3])).item(), rel=1e-5)
    model.eval()
    with torch.no_grad():
        preds = model(x, copy.deepcopy(samples), mode='predict')
        logits = model(x, mode='tensor')
    assert torch.allclose(preds[0].pred_score.sum(), torch.tensor(1.0))
    assert torch.allclose(preds[2].pred_score, logits[2].softmax(0))
    assert preds[2].pred_label.item() == int(logits[2].argmax())
    bad = [ClsDataSample().set_gt_label(i) for i in (0, 1, 7)]
    model.train()
    with pytest.raises(ValueError, match=r'label value\(s\) 7 out of range '
                       r'in a sample without file metainfo .*\[0, 3\]'):
        model(x, bad, mode='loss')
    with pytest.raises(ValueError, match='N x 64 pooled features'):
        model.head(torch.randn(3, 32))
    with pytest.raises(ValueError, match="mode must be"):
        model(x, mode='nope')


def test_long_tail_accuracy_against_hand_computed(tmp_path):
    metric = METRICS.build(dict(type='LongTailAccuracy', topk=(1, 2),
                                record_dir=str(tmp_path)))
    # training counts: a many (150), b medium (50), c few (5), d few (3)
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd'),
                               train_class_counts=[150, 50, 5, 3])

    def pred(scores, label):
        return dict(pred_score=torch.tensor(scores),
                    gt_label=torch.tensor([label]))

    metric.process({}, [
        pred([.7, .2, .1, 0.], 0),   # a: top1 hit
        pred([.2, .7, .1, 0.], 0),   # a: top1 miss, top2 hit
        pred([.1, .8, .1, 0.], 1),   # b: hit
        pred([.5, .1, .4, 0.], 2),   # c: miss, top2 hit
        pred([.3, .2, .1, .4], 2),   # c: miss, top2 miss
    ])  # d absent from the evaluated set
    out = metric.evaluate(5)
    assert out['top1'] == 40.0 and out['top2'] == 80.0
    assert out['Acc.a'] == 50.0 and out['Acc.b'] == 100.0
    assert out['Acc.c'] == 0.0 and 'Acc.d' not in out  # absent: not logged
    assert out['mAcc'] == pytest.approx(50.0)
    assert out['mAcc.many'] == 50.0 and out['mAcc.medium'] == 100.0
    assert out['mAcc.few'] == 0.0  # d left out (nan-aware)
    record = json.load(open(tmp_path / 'latest.json'))
    assert record['task'] == 'classification' and record['score'] == 'Acc'
    assert record['Acc'] == [50.0, 100.0, 0.0, None]
    assert record['train_counts'] == [150, 50, 5, 3]
    assert record['buckets'] == dict(many=['a'], medium=['b'],
                                     few=['c', 'd'])
    assert record['summary'] == dict(top1=40.0, top2=80.0, mAcc=50.0)
    run = load_run(str(tmp_path / 'latest.json'), name='run')
    assert run.task == 'classification'
    assert list(run.frequency) == pytest.approx(
        [150 / 208, 50 / 208, 5 / 208, 3 / 208])


# ---------------------------------------------------- a real short run
def test_short_cpu_training_beats_chance_with_bucket_accuracy(tmp_path):
    data = str(tmp_path / 'data')
    opts = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = data
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
    for loader in ('train_dataloader', 'val_dataloader'):
        opts[f'{loader}.dataset.num_train_per_class'] = 200
        opts[f'{loader}.dataset.num_test_per_class'] = 20
        opts[f'{loader}.dataset.imbalance_ratio'] = 50
    opts.update({'train_cfg.max_epochs': 4, 'train_cfg.val_interval': 4,
                 'param_scheduler.1.milestones': '[3]'})
    work = tmp_path / 'work'
    out = run_tool([osp.join(REPO_ROOT, 'tools', 'train.py'), CPU_CONFIG,
                    '--work-dir', str(work), '--cfg-options'] +
                   cli_options(opts), tmp_path)
    line = [ln for ln in out.splitlines() if 'Epoch(val) [4]' in ln][-1]
    values = dict(re.findall(r'(\S+): (-?[\d.]+|nan)', line))
    # 10 classes: chance is 10%; the tail (5, 3... images) may stay at 0
    assert float(values['top1']) > 35.0, line
    for bucket in ('many', 'medium', 'few'):
        assert f'mAcc.{bucket}' in values, line
    assert float(values['mAcc.many']) > float(values['mAcc.few'])
    # the report reads the run
    files = make_report([str(work)], str(tmp_path / 'report'),
                        use_tsne=False)
    md = open(files['markdown']).read()
    assert f"| **top1** | {float(values['top1']):.2f} |" in md
    assert '| **many** |' in md and '| **few** |' in md


def test_class_frequency_tool_counts_samples_of_a_classification_set(
        tiny_data, tmp_path):
    out = tmp_path / 'freq.json'
    config = osp.join(REPO_ROOT, 'configs', 'classification', 'cifar100-lt',
                      'resnet32_1xb128-200e_cifar100-lt-r10.py')
    run_tool([osp.join(REPO_ROOT, 'tools', 'analysis', 'class_frequency.py'),
              config, '--out', str(out), '--cfg-options',
              f"train_dataloader.dataset.data_root={tiny_data / 'cifar100'}"],
             tmp_path)
    record = json.load(open(out))
    from sar_plugin.datasets import longtail_counts
    assert record['unit'] == 'samples'
    assert record['counts'] == longtail_counts(3, 100, 10)
    assert record['num_samples'] == sum(record['counts'])
    assert len(record['classes']) == 100

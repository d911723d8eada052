"""SARHead: anchor losses attached to any MMSeg decode head, which stays the
head it was.

``dict(type='SARHead', head=..., anchor_losses=...)`` builds the head with
MMSeg's own code and swaps its class for a generated subclass
``SAR<Head>(SARHead, <Head>)``. Every test runs over eight heads (FCN on
HRNet-style ``resize_concat`` inputs, PSP, ASPP, DeepLabV3+, UPerNet,
SegFormer, OCR inside a ``CascadeEncoderDecoder``, and FCN with a large
dropout), either on the head alone with random multi-level features or inside
a full segmentor with a tiny ResNetV1c-18 backbone, plus MMSeg's ``DDRHead``
(which owns a child named ``head``), and checks that the SAR head

- is an instance of both its MMSeg class and ``SARHead`` (one generated
  class per head class), and leaves the plain MMSeg classes untouched,
- predicts / forwards exactly like the bare head,
- adds only its anchor terms to the head's own losses (same values),
- hands the anchor losses the *pre-dropout* classifier input, with labels
  nearest-resized to its size, and the head's ``conv_seg``,
- back-propagates to the backbone and to the SAR projector,
- has the plain model's state dict plus ``anchor_losses.*``, so that plain
  and SAR checkpoints load into each other (only those keys missing or
  unexpected) and then predict the same,
- keeps every attribute (read or written) on the head itself,
- says once when it trains without the protective runtime hooks,
- fails clearly on heads it cannot take, and
- survives ``copy.deepcopy`` / ``pickle`` (same class) without sharing state.
"""
import copy
import logging
import pickle
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import (_load_checkpoint_to_model,
                                        load_checkpoint)
from mmengine.structures import PixelData
from mmseg.models.decode_heads import (DDRHead, FCNHead, OCRHead,
                                       PSPHead)
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from torch import nn

import sar_plugin  # noqa: F401
from sar_plugin.heads import SARHead, mark_runtime_hook, sar_class
from sar_plugin.heads.sar_head import PROTECTIVE_HOOKS

register_all_modules()

N = 2  # batch
K = 5  # classes
IMG = 64  # image side
IN_CH = (8, 16, 32, 64)  # ResNetV1c-18 with base_channels=8
SIZES = (16, 8, 4, 4)  # its output sides on a 64x64 image (strides 1,2,2,1)
BN = dict(type='BN', requires_grad=True)
SAR_KEYS = {'loss_sar_anchor', 'loss_sar_pull'}
# SARLoss.log_vars(), added in training: scalars, not losses
SAR_SCALARS = {'sar_gate_open', 'sar_updates', 'sar_anchor_conf'}
REC = '_SARHeadTestRecordingLoss'
TRAIN_CFG = ConfigDict()
TEST_CFG = ConfigDict(mode='whole')

BACKBONE = dict(
    type='ResNetV1c',
    depth=18,
    base_channels=8,
    stem_channels=8,
    num_stages=4,
    out_indices=(0, 1, 2, 3),
    strides=(1, 2, 2, 1),
    dilations=(1, 1, 1, 2),
    contract_dilation=True,
    norm_cfg=BN,
    style='pytorch')

# head: the (wrapped) head config; prev: the first head of a cascade (or
# None); level: index of the input level whose size the classifier input has.
Case = namedtuple('Case', 'head prev level')

_CONCAT = dict(
    in_channels=list(IN_CH),
    in_index=(0, 1, 2, 3),
    input_transform='resize_concat')

CASES = {
    'fcn_hrnet_concat':
    Case(
        dict(
            type='FCNHead',
            channels=12,
            kernel_size=1,
            num_convs=1,
            concat_input=False,
            dropout_ratio=-1,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False,
            **_CONCAT), None, 0),
    'psp':
    Case(
        dict(
            type='PSPHead',
            in_channels=64,
            in_index=3,
            channels=8,
            pool_scales=(1, 2, 3, 6),
            dropout_ratio=0.1,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False), None, 3),
    'aspp':
    Case(
        dict(
            type='ASPPHead',
            in_channels=64,
            in_index=3,
            channels=8,
            dilations=(1, 12, 24, 36),
            dropout_ratio=0.1,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False), None, 3),
    'deeplabv3plus':
    Case(
        dict(
            type='DepthwiseSeparableASPPHead',
            in_channels=64,
            in_index=3,
            channels=8,
            dilations=(1, 12, 24, 36),
            c1_in_channels=8,
            c1_channels=4,
            dropout_ratio=0.1,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False), None, 0),
    'uper':
    Case(
        dict(
            type='UPerHead',
            in_channels=list(IN_CH),
            in_index=[0, 1, 2, 3],
            pool_scales=(1, 2, 3, 6),
            channels=8,
            dropout_ratio=0.1,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False), None, 0),
    'segformer':
    Case(
        dict(
            type='SegformerHead',
            in_channels=list(IN_CH),
            in_index=[0, 1, 2, 3],
            channels=8,
            dropout_ratio=0.1,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False), None, 0),
    'ocr_cascade':
    Case(
        dict(
            type='OCRHead',
            channels=8,
            ocr_channels=8,
            dropout_ratio=0.1,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False,
            **_CONCAT),
        dict(
            type='FCNHead',
            channels=12,
            kernel_size=1,
            num_convs=1,
            concat_input=False,
            dropout_ratio=-1,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False,
            **_CONCAT), 0),
    'fcn_dropout':
    Case(
        dict(
            type='FCNHead',
            in_channels=64,
            in_index=3,
            channels=8,
            num_convs=2,
            concat_input=True,
            dropout_ratio=0.5,
            num_classes=K,
            norm_cfg=BN,
            align_corners=False), None, 3),
}
CASE_IDS = list(CASES)


all_cases = pytest.mark.parametrize('name', CASE_IDS)


# ------------------------------------------------------- test-only modules
@MODELS.register_module(name=REC, force=True)
class RecordingLoss(nn.Module):
    """An anchor loss that records what SARHead hands it."""

    def __init__(self,
                 num_classes=None,
                 channels=None,
                 ignore_index=255,
                 loss_name='loss_rec'):
        super().__init__()
        self.num_classes = num_classes
        self.channels = channels
        self.ignore_index = ignore_index
        self.loss_name = loss_name
        self.calls = []

    def forward(self, feat, label, classifier=None):
        self.calls.append(dict(feat=feat, label=label, classifier=classifier))
        return {self.loss_name: feat.sum() * 0}


@MODELS.register_module(name='SARTestHeadWithoutClsSeg', force=True)
class SARTestHeadWithoutClsSeg(BaseDecodeHead):
    """Classifies with ``conv_seg`` directly, never through ``cls_seg``."""

    def forward(self, inputs):
        return self.conv_seg(self._transform_inputs(inputs))


@MODELS.register_module(name='SARTestNotAHead', force=True)
class SARTestNotAHead(BaseModule):
    """No ``cls_seg``, no ``conv_seg``."""

    def __init__(self, num_classes=K, **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.proj = nn.Conv2d(4, num_classes, 1)

    def forward(self, x):
        return self.proj(x)


@MODELS.register_module(name='SARTestClsSegWithoutConvSeg', force=True)
class SARTestClsSegWithoutConvSeg(BaseModule):
    """Has a ``cls_seg`` method but its classifier is not ``conv_seg``."""

    def __init__(self, num_classes=K, **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.classifier = nn.Conv2d(4, num_classes, 1)

    def cls_seg(self, feat):
        return self.classifier(feat)

    def forward(self, x):
        return self.cls_seg(x)


@MODELS.register_module(name='SARTestHeadWithAnchorLosses', force=True)
class SARTestHeadWithAnchorLosses(BaseDecodeHead):
    """A head of its own with an attribute named ``anchor_losses``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.anchor_losses = 'mine'

    def forward(self, inputs):
        return self.cls_seg(self._transform_inputs(inputs))


# ----------------------------------------------------------------- helpers
def sar_cfg(head, anchor_losses='sar'):
    if anchor_losses == 'sar':
        anchor_losses = [dict(type='SARLoss')]
    return dict(
        type='SARHead',
        head=copy.deepcopy(head),
        anchor_losses=copy.deepcopy(anchor_losses))


def segmentor_cfg(case, sar=True, anchor_losses='sar'):
    head = sar_cfg(case.head, anchor_losses) if sar else copy.deepcopy(
        case.head)
    common = dict(
        backbone=copy.deepcopy(BACKBONE),
        train_cfg=ConfigDict(),
        test_cfg=ConfigDict(mode='whole'))
    if case.prev is None:
        return dict(type='EncoderDecoder', decode_head=head, **common)
    return dict(
        type='CascadeEncoderDecoder',
        num_stages=2,
        decode_head=[copy.deepcopy(case.prev), head],
        **common)


def build_segmentor(case, sar=True, anchor_losses='sar', seed=0):
    torch.manual_seed(seed)
    return MODELS.build(segmentor_cfg(case, sar, anchor_losses))


def sar_head_of(model):
    head = model.decode_head
    return head[-1] if isinstance(head, nn.ModuleList) else head


def sar_prefix(case):
    return 'decode_head.' if case.prev is None else 'decode_head.1.'


def anchor_keys_of(model, prefix=''):
    """The state-dict keys of the anchor losses (those of a SAR head at
    ``prefix``)."""
    return {
        k
        for k in model.state_dict() if k.startswith(prefix + 'anchor_losses.')
    }


def make_samples(n=N, size=IMG, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        label = torch.randint(0, K, (1, size, size), generator=g)
        # a block of ignored pixels survives any nearest downsampling by <=4,
        # a few isolated ones may not
        label[:, :size // 4, :size // 4] = 255
        label[:, -3:, 5:9] = 255
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(
            dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size)))
        samples.append(sample)
    return samples


def make_images(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, 3, IMG, IMG, generator=g)


def make_feats(seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(N, c, s, s, generator=g) for c, s in zip(IN_CH, SIZES))


def make_prev(seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randn(N, K, SIZES[0], SIZES[0], generator=g)


def head_forward(head, case, feats, prev):
    return head(feats) if case.prev is None else head(feats, prev)


def head_loss(head, case, feats, prev, samples):
    if case.prev is None:
        return head.loss(feats, samples, TRAIN_CFG)
    return head.loss(feats, prev, samples, TRAIN_CFG)


def head_predict(head, case, feats, prev, metas):
    if case.prev is None:
        return head.predict(feats, metas, TEST_CFG)
    return head.predict(feats, prev, metas, TEST_CFG)


def build_head_pair(case, anchor_losses='sar', load='strict'):
    """A bare head and a SAR head from the same config, same weights.

    ``load='strict'``: the bare head's state dict merged into the SAR head's
    own (which adds only the anchor-loss entries) loads strictly;
    ``load='plain'``: the bare head's state dict alone loads with
    ``strict=False`` and reports exactly the anchor-loss keys missing.
    """
    torch.manual_seed(0)
    bare = MODELS.build(copy.deepcopy(case.head))
    torch.manual_seed(1)
    sar = MODELS.build(sar_cfg(case.head, anchor_losses))
    assert isinstance(sar, SARHead) and isinstance(sar, type(bare))
    anchor_keys = anchor_keys_of(sar)
    assert set(sar.state_dict()) == set(bare.state_dict()) | anchor_keys
    if load == 'strict':
        merged = dict(sar.state_dict(), **bare.state_dict())
        sar.load_state_dict(merged, strict=True)
    else:
        result = sar.load_state_dict(bare.state_dict(), strict=False)
        assert result.unexpected_keys == []
        assert set(result.missing_keys) == without_bn_counters(anchor_keys)
    sar_sd = sar.state_dict()
    for key, value in bare.state_dict().items():
        assert torch.equal(sar_sd[key], value), key
    return bare, sar


def without_bn_counters(keys):
    """Drop BN ``num_batches_tracked`` keys: torch fills them in itself when a
    checkpoint has no version metadata for a BN layer (as for the anchor
    losses of a plain checkpoint), so they are never reported missing."""
    return {k for k in keys if not k.endswith('num_batches_tracked')}


def reported_keys(msg, kind):
    """The keys MMEngine's strict ``load_state_dict`` error lists as
    ``kind`` ('unexpected key' or 'missing keys'), or an empty set."""
    marker = f'{kind} in source state_dict:'
    if marker not in msg:
        return set()
    line = msg.split(marker)[1].split('\n')[0]
    return {k.strip() for k in line.split(',') if k.strip()}


def assert_no_capture(sar):
    """Nothing recorded and not recording (outside ``loss``)."""
    assert sar._sar_feats == [] and sar._sar_capturing is False


def own(module, attr):
    """``attr`` lives on ``module`` itself (no forwarding to another)."""
    return (attr in vars(module) or attr in module._modules
            or attr in module._parameters or attr in module._buffers)


class PreHook:
    """Records the first positional input of every call of a module."""

    def __init__(self, module):
        self.inputs = []
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.inputs.append(args[0])

    def remove(self):
        self.handle.remove()


def assert_tensors_equal(a, b, what=''):
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert torch.equal(a, b), (what, (a - b).abs().max().item())


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def mm_log():
    """The records MMEngine's current logger (``print_log(...,
    logger='current')``) receives during the test."""
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def hook_warnings(records):
    return [
        r for r in records
        if r.levelno == logging.WARNING and 'SARHead' in r.getMessage()
        and 'trains anchor losses without' in r.getMessage()
    ]


# -------------------------------------------------- a. class, identity
@all_cases
def test_sar_head_is_an_instance_of_both_classes(name):
    case = CASES[name]
    head_cls = MODELS.get(case.head['type'])
    sar = MODELS.build(sar_cfg(case.head))
    assert isinstance(sar, head_cls) and isinstance(sar, SARHead)
    assert isinstance(sar, BaseDecodeHead)
    assert sar.head_class is head_cls
    assert type(sar) is sar_class(head_cls)
    assert type(sar).__name__ == 'SAR' + head_cls.__name__
    assert type(sar).__bases__ == (SARHead, head_cls)
    assert isinstance(sar.anchor_losses, nn.ModuleList)
    assert sar._modules['anchor_losses'] is sar.anchor_losses
    assert sar.validate_labels is True
    # the plain head of the same config is untouched by it
    bare = MODELS.build(copy.deepcopy(case.head))
    assert type(bare) is head_cls and not isinstance(bare, SARHead)
    assert not hasattr(bare, 'anchor_losses')
    assert not hasattr(bare, '_sar_feats')
    model = build_segmentor(case)
    assert isinstance(sar_head_of(model), head_cls)
    assert isinstance(sar_head_of(model), SARHead)


def test_generated_class_is_cached_and_plain_classes_are_not_patched():
    a = MODELS.build(sar_cfg(CASES['fcn_hrnet_concat'].head))
    b = MODELS.build(sar_cfg(CASES['fcn_dropout'].head, anchor_losses=None))
    psp = MODELS.build(sar_cfg(CASES['psp'].head))
    assert type(a) is type(b) is sar_class(FCNHead)
    assert type(a).__name__ == 'SARFCNHead'
    assert type(psp) is sar_class(PSPHead) and type(psp) is not type(a)
    # a generated class is its own SAR class
    assert sar_class(type(a)) is type(a)
    # MMSeg's classes and their methods are as MMSeg defines them
    assert not issubclass(FCNHead, SARHead)
    assert FCNHead.cls_seg is BaseDecodeHead.cls_seg
    assert FCNHead.loss is BaseDecodeHead.loss
    assert MODELS.get('FCNHead') is FCNHead
    bare = MODELS.build(copy.deepcopy(CASES['fcn_dropout'].head))
    assert type(bare) is FCNHead
    assert type(bare).cls_seg is BaseDecodeHead.cls_seg


# ------------------------------------------------------ b. equivalence
@all_cases
@pytest.mark.parametrize('load', ['strict', 'plain'])
def test_head_predict_and_forward_equal_bare_head(name, load):
    case = CASES[name]
    bare, sar = build_head_pair(case, load=load)
    bare.eval()
    sar.eval()
    feats, prev = make_feats(), make_prev()
    metas = [s.metainfo for s in make_samples()]
    with torch.no_grad():
        out_bare = head_forward(bare, case, feats, prev)
        out_sar = head_forward(sar, case, feats, prev)
        pred_bare = head_predict(bare, case, feats, prev, metas)
        pred_sar = head_predict(sar, case, feats, prev, metas)
    assert out_bare.shape == (N, K, SIZES[case.level], SIZES[case.level])
    assert_tensors_equal(out_sar, out_bare, 'forward')
    assert pred_bare.shape == (N, K, IMG, IMG)
    assert_tensors_equal(pred_sar, pred_bare, 'predict')
    # nothing is recorded outside loss()
    assert_no_capture(sar)


@all_cases
def test_segmentor_predict_and_forward_equal_plain_segmentor(name):
    case = CASES[name]
    plain = build_segmentor(case, sar=False, seed=0)
    sar = build_segmentor(case, sar=True, seed=1)
    result = sar.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == without_bn_counters(
        anchor_keys_of(sar, sar_prefix(case)))
    plain.eval()
    sar.eval()
    images = make_images()
    with torch.no_grad():
        res_plain = plain.predict(images, make_samples())
        res_sar = sar.predict(images, make_samples())
        fwd_plain = plain._forward(images, make_samples())
        fwd_sar = sar._forward(images, make_samples())
    for p, s in zip(res_plain, res_sar):
        assert_tensors_equal(s.seg_logits.data, p.seg_logits.data,
                             'seg_logits')
        assert_tensors_equal(s.pred_sem_seg.data, p.pred_sem_seg.data,
                             'pred_sem_seg')
    assert fwd_sar.shape[:2] == (N, K)
    assert_tensors_equal(fwd_sar, fwd_plain, '_forward')


# ------------------------------------------------------------- c. loss()
@all_cases
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_head_loss_keys_and_values_match_bare_head(name, mode):
    case = CASES[name]
    bare, sar = build_head_pair(case)
    bare.train(mode == 'train')
    sar.train(mode == 'train')
    feats, prev = make_feats(), make_prev()
    torch.manual_seed(123)  # same dropout masks in train mode
    loss_bare = head_loss(bare, case, feats, prev, make_samples())
    torch.manual_seed(123)
    loss_sar = head_loss(sar, case, feats, prev, make_samples())
    assert 'loss_ce' in loss_bare and 'acc_seg' in loss_bare
    scalars = SAR_SCALARS if mode == 'train' else set()
    assert set(loss_sar) == set(loss_bare) | SAR_KEYS | scalars
    assert not (set(loss_bare) & (SAR_KEYS | SAR_SCALARS))
    for key in scalars:
        assert loss_sar[key].dim() == 0 and not loss_sar[key].requires_grad
    if mode == 'train':  # a first step: the gate is closed, no update yet
        assert loss_sar['sar_gate_open'].item() == 0.0
        assert loss_sar['sar_updates'].item() == 0.0
        assert 0.0 < loss_sar['sar_anchor_conf'].item() < 1.0
    for key, value in loss_bare.items():
        assert_tensors_equal(loss_sar[key], value, key)
    for key in SAR_KEYS:
        assert loss_sar[key].dim() == 0 and torch.isfinite(loss_sar[key])
        assert loss_sar[key].requires_grad, key
    # the anchor CE of random anchors through a random classifier is > 0
    assert loss_sar['loss_sar_anchor'] > 0
    assert_no_capture(sar)


@all_cases
def test_segmentor_loss_keys_and_values_match_plain_segmentor(name):
    case = CASES[name]
    plain = build_segmentor(case, sar=False, seed=0)
    sar = build_segmentor(case, sar=True, seed=1)
    sar.load_state_dict(plain.state_dict(), strict=False)
    plain.train()
    sar.train()
    images = make_images()
    torch.manual_seed(7)
    loss_plain = plain.loss(images, make_samples())
    torch.manual_seed(7)
    loss_sar = sar.loss(images, make_samples())
    prefix = 'decode' if case.prev is None else 'decode_1'
    assert set(loss_sar) == set(loss_plain) | {
        f'{prefix}.{k}'
        for k in SAR_KEYS | SAR_SCALARS
    }
    # MMEngine sums only the *loss* entries: the scalars are logged, not
    # trained on
    total, log_vars = sar.parse_losses(loss_sar)
    torch.testing.assert_close(
        total, sum(v for k, v in loss_sar.items() if 'loss' in k))
    assert {f'{prefix}.{k}' for k in SAR_SCALARS} <= set(log_vars)
    for key, value in loss_plain.items():
        assert_tensors_equal(loss_sar[key], value, key)


def test_no_anchor_losses_is_the_bare_head():
    case = CASES['psp']
    bare, sar = build_head_pair(case, anchor_losses=None)
    assert len(sar.anchor_losses) == 0
    feats = make_feats()
    torch.manual_seed(3)
    loss_bare = head_loss(bare, case, feats, None, make_samples())
    torch.manual_seed(3)
    loss_sar = head_loss(sar, case, feats, None, make_samples())
    assert set(loss_sar) == set(loss_bare)
    for key, value in loss_bare.items():
        assert_tensors_equal(loss_sar[key], value, key)
    assert_no_capture(sar)


def test_single_dict_anchor_loss_and_duplicate_names():
    case = CASES['psp']
    sar = MODELS.build(sar_cfg(case.head, dict(type='SARLoss')))
    assert len(sar.anchor_losses) == 1
    # two losses returning the same term name must not silently overwrite
    sar = MODELS.build(
        sar_cfg(case.head, [dict(type='SARLoss'),
                            dict(type='SARLoss')]))
    with pytest.raises(KeyError, match='loss_sar_anchor'):
        sar.loss(make_feats(), make_samples(), TRAIN_CFG)
    sar = MODELS.build(
        sar_cfg(case.head, [
            dict(type='SARLoss'),
            dict(type='SARLoss', loss_name='loss_sar2')
        ]))
    losses = sar.loss(make_feats(), make_samples(), TRAIN_CFG)
    assert SAR_KEYS | {'loss_sar2_anchor', 'loss_sar2_pull'} <= set(losses)


# ----------------------------------------------------------- d. backward
@all_cases
def test_backward_reaches_backbone_and_projector(name):
    case = CASES[name]
    model = build_segmentor(case)
    model.train()
    losses = model.loss(make_images(), make_samples())
    total, log_vars = model.parse_losses(losses)
    prefix = 'decode' if case.prev is None else 'decode_1'
    assert f'{prefix}.loss_sar_anchor' in log_vars
    assert f'{prefix}.loss_sar_pull' in log_vars
    manual = sum(v for k, v in losses.items() if 'loss' in k)
    torch.testing.assert_close(total, manual, rtol=0, atol=0)
    total.backward()
    backbone_grads = [
        p.grad for p in model.backbone.parameters() if p.grad is not None
    ]
    assert backbone_grads and any(g.abs().sum() > 0 for g in backbone_grads)
    projector = sar_head_of(model).anchor_losses[0].projector
    params = list(projector.parameters())
    assert params and all(p.grad is not None for p in params)
    assert sum(p.grad.abs().sum() for p in params) > 0
    # the classifier gets gradient from the anchor CE as well
    conv_seg = sar_head_of(model).conv_seg
    assert conv_seg.weight.grad is not None


@all_cases
def test_pull_gradient_flows_through_captured_feature_to_backbone(name):
    """With the gate forced open, the pull term alone trains the backbone:
    the captured feature is part of the graph, not a detached copy."""
    case = CASES[name]
    model = build_segmentor(
        case,
        anchor_losses=[dict(type='SARLoss', gate='latched', pull_weight=1.0)])
    sar_loss = sar_head_of(model).anchor_losses[0]
    with torch.no_grad():
        sar_loss.gate_open.fill_(True)
        sar_loss.semantic_anchors.normal_()
    model.train()
    losses = model.loss(make_images(), make_samples())
    prefix = 'decode' if case.prev is None else 'decode_1'
    pull = losses[f'{prefix}.loss_sar_pull']
    assert pull > 0
    pull.backward()
    grads = [
        p.grad for p in model.backbone.parameters() if p.grad is not None
    ]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    # ... and the classifier does not: the pull is on its input
    conv_seg = sar_head_of(model).conv_seg
    assert conv_seg.weight.grad is None or not conv_seg.weight.grad.any()


# ------------------------------------------------- e. captured feature
@all_cases
def test_captured_feature_is_classifier_input_before_dropout(name):
    case = CASES[name]
    torch.manual_seed(0)
    sar = MODELS.build(sar_cfg(case.head, [dict(type=REC)]))
    sar.train()
    rec = sar.anchor_losses[0]
    # filled from the head
    assert rec.num_classes == K
    assert rec.channels == sar.channels
    assert rec.ignore_index == sar.ignore_index == 255
    conv_hook = PreHook(sar.conv_seg)
    drop_hook = PreHook(sar.dropout) if sar.dropout is not None else None
    feats = make_feats()
    losses = head_loss(sar, case, feats, make_prev(), make_samples())
    conv_hook.remove()
    if drop_hook is not None:
        drop_hook.remove()
    assert set(losses) >= {'loss_ce', 'acc_seg', 'loss_rec'}
    assert len(rec.calls) == 1
    call = rec.calls[0]
    feat = call['feat']
    side = SIZES[case.level]
    assert feat.shape == (N, sar.channels, side, side)
    assert feat.requires_grad
    assert call['classifier'] is sar.conv_seg
    assert len(conv_hook.inputs) == 1
    conv_in = conv_hook.inputs[0]
    if drop_hook is None:
        assert feat is conv_in
    else:
        assert len(drop_hook.inputs) == 1
        assert_tensors_equal(feat, drop_hook.inputs[0], 'dropout input')
        assert feat is drop_hook.inputs[0]


def test_dropout_case_captures_pre_dropout_feature_in_train_mode():
    case = CASES['fcn_dropout']
    torch.manual_seed(0)
    sar = MODELS.build(sar_cfg(case.head, [dict(type=REC)]))
    sar.train()
    assert isinstance(sar.dropout, nn.Dropout2d) and sar.dropout.p == 0.5
    conv_hook, drop_hook = PreHook(sar.conv_seg), PreHook(sar.dropout)
    head_loss(sar, case, make_feats(), None, make_samples())
    conv_hook.remove()
    drop_hook.remove()
    feat = sar.anchor_losses[0].calls[0]['feat']
    post = conv_hook.inputs[0]
    pre = drop_hook.inputs[0]
    assert_tensors_equal(feat, pre, 'pre-dropout feature')
    assert not torch.equal(feat, post), 'captured the post-dropout feature'
    # Dropout2d zeroes whole channels and rescales the rest by 1 / (1 - p)
    dropped = post.abs().sum(dim=(2, 3)) == 0
    assert dropped.any()
    torch.testing.assert_close(post[~dropped], 2 * pre[~dropped])

    # in eval mode dropout is the identity: captured == classifier input
    sar.eval()
    sar.anchor_losses[0].calls.clear()
    conv_hook = PreHook(sar.conv_seg)
    head_loss(sar, case, make_feats(), None, make_samples())
    conv_hook.remove()
    assert_tensors_equal(sar.anchor_losses[0].calls[0]['feat'],
                         conv_hook.inputs[0], 'eval feature')


def test_explicit_loss_config_values_are_kept():
    case = CASES['psp']
    sar = MODELS.build(
        sar_cfg(case.head, [dict(type=REC, ignore_index=7)]))
    rec = sar.anchor_losses[0]
    assert rec.ignore_index == 7
    assert rec.num_classes == K
    channels = rec.channels  # the head's; an equal explicit value is kept
    sar = MODELS.build(
        sar_cfg(case.head, [dict(type=REC, channels=channels)]))
    assert sar.anchor_losses[0].channels == channels
    # one that disagrees with the head is refused at build (issue 10)
    with pytest.raises(ValueError, match='sets `channels`=3 but the head'):
        MODELS.build(sar_cfg(case.head, [dict(type=REC, channels=3)]))


# --------------------------------------------------- f. label resizing
@all_cases
def test_labels_are_nearest_resized_to_feature_size(name):
    case = CASES[name]
    sar = MODELS.build(sar_cfg(case.head, [dict(type=REC)]))
    sar.train()
    samples = make_samples()
    gt = torch.stack([s.gt_sem_seg.data for s in samples])  # N x 1 x H x W
    head_loss(sar, case, make_feats(), make_prev(), samples)
    label = sar.anchor_losses[0].calls[0]['label']
    side = SIZES[case.level]
    assert label.shape == (N, side, side)
    assert label.dtype == torch.long
    expected = F.interpolate(
        gt.float(), size=(side, side), mode='nearest').long()[:, 0]
    assert torch.equal(label, expected)
    stride = IMG // side
    assert torch.equal(label, gt[:, 0, ::stride, ::stride])
    assert (label == 255).any() and (label < K).any()
    # the data samples are left untouched
    assert torch.equal(
        torch.stack([s.gt_sem_seg.data for s in samples]), gt)


def test_resize_label_keeps_labels_of_the_right_size():
    samples = make_samples(size=16)
    gt = torch.stack([s.gt_sem_seg.data for s in samples])
    label = SARHead.resize_label(samples, (16, 16))
    assert label.shape == (N, 16, 16) and label.dtype == torch.long
    assert torch.equal(label, gt[:, 0])
    # non-integer ratio: still PyTorch's nearest
    label = SARHead.resize_label(samples, (5, 7))
    expected = F.interpolate(gt.float(), size=(5, 7), mode='nearest')
    assert torch.equal(label, expected.long()[:, 0])


# ---------------------------------------------------------- g. checkpoint
@all_cases
def test_state_dict_is_the_plain_one_plus_anchor_losses(name):
    case = CASES[name]
    plain = build_segmentor(case, sar=False, seed=0)
    sar = build_segmentor(case, sar=True, seed=1)
    prefix = sar_prefix(case)
    anchor_keys = anchor_keys_of(sar, prefix)
    assert anchor_keys  # projector weights, anchors, EMA state
    assert set(sar.state_dict()) == set(plain.state_dict()) | anchor_keys
    assert not set(plain.state_dict()) & anchor_keys
    # no key anywhere names a wrapper
    assert not any(k.startswith(prefix + 'head.') for k in sar.state_dict())
    # the head alone: same layout, without the segmentor's prefix
    head = sar_head_of(sar)
    plain_head = sar_head_of(plain)
    assert set(head.state_dict()) == set(plain_head.state_dict()) | \
        anchor_keys_of(head)
    assert {prefix + k for k in anchor_keys_of(head)} == anchor_keys
    # without anchor losses it is the plain state dict exactly
    bare_sar = build_segmentor(case, anchor_losses=None, seed=2)
    assert set(bare_sar.state_dict()) == set(plain.state_dict())


@all_cases
def test_plain_checkpoint_loads_into_sar_model(name, tmp_path):
    case = CASES[name]
    plain = build_segmentor(case, sar=False, seed=0)
    plain_sd = plain.state_dict()
    plain_keys = set(plain_sd)
    prefix = sar_prefix(case)

    # torch
    sar = build_segmentor(case, sar=True, seed=1)
    anchor_keys = anchor_keys_of(sar, prefix)
    assert anchor_keys
    anchors_before = {k: v.clone() for k, v in sar.state_dict().items()
                      if k in anchor_keys}
    result = sar.load_state_dict(plain_sd, strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == without_bn_counters(anchor_keys)
    sar_sd = sar.state_dict()
    assert set(sar_sd) == plain_keys | anchor_keys
    for key, value in plain_sd.items():
        assert_tensors_equal(sar_sd[key], value, key)
    # the anchor losses keep their own (constructed) state
    for key, value in anchors_before.items():
        assert_tensors_equal(sar_sd[key], value, key)
    # the caller's state dict is not modified by loading it
    assert set(plain_sd) == plain_keys

    # mmengine, as `load_from` does it (through a file)
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': plain_sd, 'meta': {}}, path)
    sar = build_segmentor(case, sar=True, seed=2)
    load_checkpoint(sar, str(path), map_location='cpu', strict=False)
    sar_sd = sar.state_dict()
    for key, value in plain_sd.items():
        assert_tensors_equal(sar_sd[key], value, key)
    # strict mode reports exactly the anchor-loss keys as missing
    sar = build_segmentor(case, sar=True, seed=3)
    with pytest.raises(RuntimeError) as err:
        _load_checkpoint_to_model(
            sar, {'state_dict': copy.copy(plain_sd)}, strict=True)
    msg = str(err.value)
    assert reported_keys(msg, 'unexpected key') == set()
    assert reported_keys(msg, 'missing keys') == without_bn_counters(
        anchor_keys)


@all_cases
def test_sar_checkpoint_loads_into_plain_model(name, tmp_path):
    case = CASES[name]
    sar = build_segmentor(case, seed=0)
    sar.train()
    sar.loss(make_images(), make_samples())  # BN stats, EMA state move
    sar_sd = sar.state_dict()
    anchor_keys = anchor_keys_of(sar, sar_prefix(case))

    plain = build_segmentor(case, sar=False, seed=1)
    result = plain.load_state_dict(sar_sd, strict=False)
    assert result.missing_keys == []
    assert set(result.unexpected_keys) == anchor_keys
    for key, value in plain.state_dict().items():
        assert_tensors_equal(value, sar_sd[key], key)
    # strict mode reports exactly the anchor-loss keys as unexpected
    plain = build_segmentor(case, sar=False, seed=2)
    with pytest.raises(RuntimeError) as err:
        _load_checkpoint_to_model(
            plain, {'state_dict': copy.copy(sar_sd)}, strict=True)
    msg = str(err.value)
    assert reported_keys(msg, 'unexpected key') == anchor_keys
    assert reported_keys(msg, 'missing keys') == set()


@all_cases
def test_checkpoints_load_across_with_mmengine_and_predict_the_same(
        name, tmp_path):
    """``load_checkpoint(model, file, strict=False)`` both ways: the loaded
    model's logits equal the source model's, bit for bit."""
    case = CASES[name]
    images = make_images()

    # plain -> SAR
    plain = build_segmentor(case, sar=False, seed=0)
    plain.train()
    plain.loss(make_images(seed=1), make_samples())  # move the BN stats
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': plain.state_dict(), 'meta': {}}, path)
    sar = build_segmentor(case, sar=True, seed=1)
    load_checkpoint(sar, str(path), map_location='cpu', strict=False)
    plain.eval()
    sar.eval()
    with torch.no_grad():
        ref = plain._forward(images)
        out = sar._forward(images)
    assert ref.shape[:2] == (N, K)
    assert torch.equal(out, ref), 'plain checkpoint in a SAR model'

    # SAR -> plain
    sar = build_segmentor(case, sar=True, seed=2)
    sar.train()
    sar.loss(make_images(seed=2), make_samples())  # BN stats, EMA state
    path = tmp_path / 'sar.pth'
    torch.save({'state_dict': sar.state_dict(), 'meta': {}}, path)
    plain = build_segmentor(case, sar=False, seed=3)
    load_checkpoint(plain, str(path), map_location='cpu', strict=False)
    plain.eval()
    sar.eval()
    with torch.no_grad():
        ref = sar._forward(images)
        out = plain._forward(images)
    assert torch.equal(out, ref), 'SAR checkpoint in a plain model'


@all_cases
def test_sar_checkpoint_round_trips_strictly(name, tmp_path):
    case = CASES[name]
    model = build_segmentor(case, seed=0)
    model.train()
    model.loss(make_images(), make_samples())  # BN stats, EMA state move
    sar_loss = sar_head_of(model).anchor_losses[0]
    with torch.no_grad():
        sar_loss.semantic_anchors.normal_()
        sar_loss.gate_open.fill_(True)
        sar_loss.num_updates.fill_(5)
    sd = model.state_dict()
    fresh = build_segmentor(case, seed=1)
    fresh.load_state_dict(sd, strict=True)
    fresh_sd = fresh.state_dict()
    assert set(fresh_sd) == set(sd)
    for key, value in sd.items():
        assert_tensors_equal(fresh_sd[key], value, key)
    # through a file with mmengine, strict
    path = tmp_path / 'sar.pth'
    torch.save({'state_dict': sd}, path)
    fresh = build_segmentor(case, seed=2)
    load_checkpoint(fresh, str(path), map_location='cpu', strict=True)
    for key, value in fresh.state_dict().items():
        assert_tensors_equal(value, sd[key], key)
    # the loaded model predicts like the original
    model.eval()
    fresh.eval()
    with torch.no_grad():
        a = model._forward(make_images())
        b = fresh._forward(make_images())
    assert_tensors_equal(a, b, '_forward after reload')


def test_plain_checkpoint_loads_strictly_without_anchor_losses():
    case = CASES['uper']
    plain = build_segmentor(case, sar=False, seed=0)
    sar = build_segmentor(case, anchor_losses=None, seed=1)
    sar.load_state_dict(plain.state_dict(), strict=True)
    plain.load_state_dict(sar.state_dict(), strict=True)
    sar_sd = sar.state_dict()
    for key, value in plain.state_dict().items():
        assert_tensors_equal(sar_sd[key], value, key)


def test_init_weights_is_the_heads_own_and_spares_the_anchor_losses():
    case = CASES['psp']
    model = build_segmentor(case)
    head = sar_head_of(model)
    anchors_before = copy.deepcopy(head.anchor_losses.state_dict())
    model.init_weights()
    conv_seg = head.conv_seg
    # BaseDecodeHead's init_cfg: Normal(std=0.01) on conv_seg, zero bias
    assert conv_seg.weight.std() < 0.03
    assert not conv_seg.bias.any()
    for key, value in head.anchor_losses.state_dict().items():
        assert_tensors_equal(value, anchors_before[key], key)
    assert 'anchor_losses' in head._modules  # put back

    # a layer-wise init_cfg of the head reaches the head's layers only,
    # not the projector's
    cfg = dict(case.head, init_cfg=dict(type='Constant', val=0.5,
                                        layer=['Conv2d', 'Linear']))
    sar = MODELS.build(sar_cfg(cfg))
    projector = sar.anchor_losses[0].projector
    assert isinstance(projector.fc1, nn.Linear)
    anchors_before = copy.deepcopy(sar.anchor_losses.state_dict())
    sar.init_weights()
    assert torch.all(sar.conv_seg.weight == 0.5)
    assert not torch.all(projector.fc1.weight == 0.5)
    assert not torch.all(projector.conv.conv.weight == 0.5)
    for key, value in sar.anchor_losses.state_dict().items():
        assert_tensors_equal(value, anchors_before[key], key)


# ------------------------------------------ h. attributes are the head's
ATTRS = ('num_classes', 'out_channels', 'align_corners', 'ignore_index',
         'threshold', 'loss_decode', 'channels', 'in_channels', 'in_index',
         'dropout', 'conv_seg')


@all_cases
def test_attributes_are_the_heads_own(name):
    case = CASES[name]
    sar = MODELS.build(sar_cfg(case.head))
    bare = MODELS.build(copy.deepcopy(case.head))
    # no forwarding: nn.Module's own lookup, every attribute on the head
    assert type(sar).__getattr__ is nn.Module.__getattr__
    assert type(sar).__setattr__ is nn.Module.__setattr__
    for attr in ATTRS:
        assert own(sar, attr), attr
        assert own(bare, attr), attr
    assert not hasattr(sar, 'head')  # no wrapped head
    assert sar.num_classes == K and sar.out_channels == K
    # unknown attributes still raise AttributeError (hasattr works)
    assert not hasattr(sar, 'no_such_attribute_xyz')
    model = build_segmentor(case)
    assert model.num_classes == K
    assert model.out_channels == K
    assert model.align_corners is False


@all_cases
def test_attribute_writes_reach_the_heads_own_code(name):
    case = CASES[name]
    bare, sar = build_head_pair(case)
    bare.eval()
    sar.eval()
    feats, prev = make_feats(), make_prev()
    metas = [s.metainfo for s in make_samples()]
    with torch.no_grad():
        before = head_predict(sar, case, feats, prev, metas)
    sar.align_corners = True
    assert vars(sar)['align_corners'] is True
    assert bare.align_corners is False
    bare.align_corners = True
    with torch.no_grad():
        pred_bare = head_predict(bare, case, feats, prev, metas)
        pred_sar = head_predict(sar, case, feats, prev, metas)
    assert_tensors_equal(pred_sar, pred_bare, 'predict, align_corners')
    assert not torch.equal(pred_sar, before), 'align_corners was ignored'


def test_replaced_classifier_is_the_one_used_and_handed_on():
    case = CASES['psp']
    sar = MODELS.build(sar_cfg(case.head, [dict(type=REC)]))
    new = nn.Conv2d(sar.channels, K, 1)
    with torch.no_grad():
        new.weight.zero_()
        new.bias.fill_(2.0)
    sar.conv_seg = new
    assert sar._modules['conv_seg'] is new
    assert sar.state_dict()['conv_seg.bias'].eq(2.0).all()
    sar.eval()
    with torch.no_grad():
        out = sar(make_feats())
    assert torch.all(out == 2.0)
    sar.train()
    head_loss(sar, case, make_feats(), None, make_samples())
    assert sar.anchor_losses[0].calls[0]['classifier'] is new


def test_non_default_attributes_reach_the_segmentor():
    head = dict(CASES['psp'].head, align_corners=True, ignore_index=7,
                threshold=0.4)
    sar = MODELS.build(sar_cfg(head))
    assert sar.align_corners is True
    assert sar.ignore_index == 7
    assert sar.threshold == 0.4
    assert sar.anchor_losses[0].ignore_index == 7
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=copy.deepcopy(BACKBONE),
            decode_head=sar_cfg(head),
            test_cfg=ConfigDict(mode='whole')))
    assert model.align_corners is True
    assert model.num_classes == K and model.out_channels == K
    # binary head: out_channels 1, threshold defaulted by the head
    binary = dict(
        CASES['psp'].head,
        num_classes=2,
        out_channels=1,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    sar = MODELS.build(sar_cfg(binary, anchor_losses=None))
    assert sar.out_channels == 1 and sar.num_classes == 2
    assert vars(sar)['threshold'] == 0.3
    case = CASES['ocr_cascade']
    cascade = MODELS.build(
        dict(
            segmentor_cfg(case),
            decode_head=[
                dict(case.prev, align_corners=True),
                sar_cfg(dict(case.head, align_corners=True))
            ]))
    assert isinstance(cascade.decode_head[1], OCRHead)
    assert cascade.align_corners is True
    assert cascade.num_classes == K and cascade.out_channels == K


# ------------------------------------------------- i. runtime-hook warning
def test_missing_hook_warning_is_logged_once(mm_log):
    case = CASES['psp']
    sar = MODELS.build(sar_cfg(case.head))
    sar.train()
    head_loss(sar, case, make_feats(), None, make_samples())
    head_loss(sar, case, make_feats(), None, make_samples())
    warnings = hook_warnings(mm_log)
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert 'PSPHead' in msg
    for hook in PROTECTIVE_HOOKS:
        assert hook in msg
    assert set(PROTECTIVE_HOOKS) == {
        'RunCheckHook', 'ExactResumeHook', 'AnchorStateHook'
    }
    # another head says it once for itself
    other = MODELS.build(sar_cfg(case.head))
    head_loss(other, case, make_feats(), None, make_samples())
    assert len(hook_warnings(mm_log)) == 2
    # a head without anchor losses has nothing to protect
    quiet = MODELS.build(sar_cfg(case.head, anchor_losses=None))
    head_loss(quiet, case, make_feats(), None, make_samples())
    assert len(hook_warnings(mm_log)) == 2


def test_missing_hook_warning_is_silenced_by_the_hooks(mm_log):
    case = CASES['ocr_cascade']
    model = build_segmentor(case)
    for hook in PROTECTIVE_HOOKS:
        # the cascade's first head is a plain FCNHead: one head marked
        assert mark_runtime_hook(model, hook) == 1
    model.train()
    model.loss(make_images(), make_samples())
    model.loss(make_images(), make_samples())
    assert hook_warnings(mm_log) == []
    # with one hook missing, the warning names it alone
    model = build_segmentor(case)
    mark_runtime_hook(model, 'ExactResumeHook')
    mark_runtime_hook(model, 'RunCheckHook')
    model.train()
    model.loss(make_images(), make_samples())
    warnings = hook_warnings(mm_log)
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert 'AnchorStateHook' in msg and 'OCRHead' in msg
    assert 'ExactResumeHook' not in msg and 'RunCheckHook' not in msg
    # a plain model has nothing to mark
    assert mark_runtime_hook(build_segmentor(case, sar=False),
                             'ExactResumeHook') == 0


# ------------------------------------------------------------- j. errors
def test_head_that_never_calls_cls_seg_raises_runtime_error():
    cfg = dict(
        type='SARTestHeadWithoutClsSeg',
        in_channels=64,
        channels=64,
        in_index=3,
        num_classes=K,
        norm_cfg=BN)
    sar = MODELS.build(sar_cfg(cfg))  # it does have cls_seg and conv_seg
    with pytest.raises(RuntimeError, match='SARTestHeadWithoutClsSeg'):
        sar.loss(make_feats(), make_samples(), TRAIN_CFG)
    assert_no_capture(sar)
    # without anchor losses there is nothing to capture: no error
    sar = MODELS.build(sar_cfg(cfg, anchor_losses=None))
    assert 'loss_ce' in sar.loss(make_feats(), make_samples(), TRAIN_CFG)


@pytest.mark.parametrize('head_type',
                         ['SARTestNotAHead', 'SARTestClsSegWithoutConvSeg'])
def test_unwrappable_head_raises_type_error_at_construction(head_type):
    with pytest.raises(TypeError, match=head_type):
        MODELS.build(sar_cfg(dict(type=head_type)))
    # the failed build leaves the head's class alone
    assert not issubclass(MODELS.get(head_type), SARHead)


def test_head_with_an_anchor_losses_attribute_is_refused():
    cfg = dict(
        type='SARTestHeadWithAnchorLosses',
        in_channels=64,
        channels=8,
        in_index=3,
        num_classes=K,
        norm_cfg=BN)
    with pytest.raises(TypeError, match='already has an attribute named '
                       '`anchor_losses`'):
        MODELS.build(sar_cfg(cfg))


def test_sar_head_inside_sar_head_is_refused():
    case = CASES['psp']
    with pytest.raises(TypeError, match='already has anchor losses'):
        MODELS.build(
            dict(type='SARHead', head=sar_cfg(case.head),
                 anchor_losses=[dict(type=REC)]))
    # nor can an already-built SAR head be given as the head
    sar = MODELS.build(sar_cfg(case.head))
    with pytest.raises(TypeError, match='already has anchor losses'):
        SARHead(head=sar, anchor_losses=[dict(type=REC)])
    assert len(sar.anchor_losses) == 1  # untouched


def test_generated_class_cannot_be_called_directly():
    case = CASES['psp']
    sar = MODELS.build(sar_cfg(case.head))
    with pytest.raises(TypeError, match='generated by SARHead'):
        type(sar)(head=copy.deepcopy(case.head))
    with pytest.raises(TypeError, match='generated by SARHead'):
        sar_class(FCNHead)(**copy.deepcopy(CASES['fcn_dropout'].head))


def test_bad_sar_head_arguments_are_refused():
    case = CASES['psp']
    # the head's own arguments at the SARHead level
    with pytest.raises(TypeError, match='num_classes'):
        MODELS.build(dict(sar_cfg(case.head), num_classes=K))
    with pytest.raises(TypeError, match='needs `head`'):
        MODELS.build(dict(type='SARHead', anchor_losses=[dict(type=REC)]))


def test_capture_is_reset_when_the_head_raises():
    case = CASES['psp']
    sar = MODELS.build(sar_cfg(case.head))
    with pytest.raises(IndexError):
        # too few levels for in_index=3: the head fails inside its forward
        sar.loss(make_feats()[:2], make_samples(), TRAIN_CFG)
    assert sar._sar_capturing is False
    losses = sar.loss(make_feats(), make_samples(), TRAIN_CFG)
    assert SAR_KEYS <= set(losses)
    assert_no_capture(sar)


def test_anchor_loss_errors_are_clear():
    case = CASES['psp']
    with pytest.raises(ValueError, match="'type'"):
        MODELS.build(sar_cfg(case.head, [dict(loss_weight=1.0)]))
    with pytest.raises(KeyError, match='NoSuchAnchorLoss'):
        MODELS.build(sar_cfg(case.head, [dict(type='NoSuchAnchorLoss')]))


# ---------------------------------------------------- k. deepcopy, pickle
def _check_own_state(orig_head, clone_head):
    """The copy is of the same generated class, with capture state, hook
    marks and modules of its own."""
    assert type(clone_head) is type(orig_head)
    assert isinstance(clone_head, SARHead)
    assert clone_head.head_class is orig_head.head_class
    assert clone_head is not orig_head
    assert clone_head._sar_feats is not orig_head._sar_feats
    assert clone_head._sar_runtime_hooks is not orig_head._sar_runtime_hooks
    assert clone_head.anchor_losses is not orig_head.anchor_losses
    assert clone_head.conv_seg is not orig_head.conv_seg
    assert_no_capture(clone_head)


@pytest.mark.parametrize('name', ['psp', 'ocr_cascade', 'fcn_dropout'])
def test_deepcopy_records_in_the_copy_only(name):
    case = CASES[name]
    model = build_segmentor(
        case, anchor_losses=[dict(type='SARLoss'),
                             dict(type=REC)])
    clone = copy.deepcopy(model)
    orig_head, clone_head = sar_head_of(model), sar_head_of(clone)
    _check_own_state(orig_head, clone_head)

    orig_hook = PreHook(orig_head.conv_seg)
    clone_hook = PreHook(clone_head.conv_seg)
    clone.train()
    losses = clone.loss(make_images(), make_samples())
    orig_hook.remove()
    clone_hook.remove()
    prefix = 'decode' if case.prev is None else 'decode_1'
    assert {f'{prefix}.{k}' for k in SAR_KEYS | {'loss_rec'}} <= set(losses)
    assert orig_hook.inputs == []  # the original head was not run
    assert clone_hook.inputs  # the copy's was
    assert orig_head.anchor_losses[1].calls == []
    assert len(clone_head.anchor_losses[1].calls) == 1
    assert_no_capture(orig_head)
    assert orig_head._sar_warned is False  # the copy warned for itself
    assert clone_head._sar_warned is True
    clone.parse_losses(losses)[0].backward()
    assert all(p.grad is None for p in model.parameters())
    assert any(p.grad is not None for p in clone.parameters())

    # the original still works on its own, and records into itself only
    model.train()
    losses = model.loss(make_images(), make_samples())
    assert {f'{prefix}.{k}' for k in SAR_KEYS} <= set(losses)
    assert len(orig_head.anchor_losses[1].calls) == 1
    assert len(clone_head.anchor_losses[1].calls) == 1


@pytest.mark.parametrize('how', ['deepcopy', 'pickle'])
def test_copies_keep_the_class_and_own_their_capture_state(how):
    case = CASES['fcn_dropout']
    sar = MODELS.build(sar_cfg(case.head, [dict(type=REC)]))
    mark_runtime_hook(sar, 'ExactResumeHook')
    # a copy taken while the original records (as an EMA hook might)
    marker = torch.zeros(1)
    sar._sar_capturing = True
    sar._sar_feats.append(marker)
    try:
        if how == 'deepcopy':
            clone = copy.deepcopy(sar)
        else:
            clone = pickle.loads(pickle.dumps(sar))
    finally:
        sar._sar_capturing = False
    assert type(clone) is type(sar) is sar_class(FCNHead)
    assert isinstance(clone, FCNHead) and isinstance(clone, SARHead)
    assert clone._sar_feats is not sar._sar_feats
    assert clone._sar_runtime_hooks == {'ExactResumeHook'}
    assert clone._sar_runtime_hooks is not sar._sar_runtime_hooks
    # what the original records (or clears) is not the copy's business
    sar._sar_feats.clear()
    assert len(clone._sar_feats) == 1
    clone._sar_feats.clear()
    clone._sar_capturing = False
    mark_runtime_hook(clone, 'RunCheckHook')
    assert sar._sar_runtime_hooks == {'ExactResumeHook'}
    # same state dict, and the copy trains on its own
    assert set(clone.state_dict()) == set(sar.state_dict())
    for key, value in sar.state_dict().items():
        assert_tensors_equal(clone.state_dict()[key], value, key)
    clone.train()
    losses = head_loss(clone, case, make_feats(), None, make_samples())
    assert 'loss_rec' in losses
    assert len(clone.anchor_losses[0].calls) == 1
    assert sar.anchor_losses[0].calls == []
    assert_no_capture(clone)
    assert_no_capture(sar)


def test_deepcopy_copy_predicts_like_the_original():
    case = CASES['deeplabv3plus']
    model = build_segmentor(case)
    clone = copy.deepcopy(model)
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert_tensors_equal(
            clone._forward(make_images()), model._forward(make_images()))
        # changing the copy's classifier changes only the copy's output
        sar_head_of(clone).conv_seg.bias.add_(1.0)
        a, b = model._forward(make_images()), clone._forward(make_images())
    torch.testing.assert_close(b, a + 1.0)


def test_pickle_round_trip_keeps_the_class_and_trains():
    case = CASES['ocr_cascade']
    model = build_segmentor(case)
    clone = pickle.loads(pickle.dumps(model))
    orig_head, clone_head = sar_head_of(model), sar_head_of(clone)
    _check_own_state(orig_head, clone_head)
    assert type(clone_head) is sar_class(OCRHead)
    # the plain first head of the cascade stays plain
    assert type(clone.decode_head[0]) is FCNHead
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert_tensors_equal(
            clone._forward(make_images()), model._forward(make_images()))
    clone.train()
    losses = clone.loss(make_images(), make_samples())
    assert {f'decode_1.{k}' for k in SAR_KEYS} <= set(losses)


# ------------------------------------- l. DDRHead (owns a child `head`)
# as in MMSeg's ddrnet configs, smaller: in_channels 32 * 4 -> 16, channels
# 64 -> 8, min_kept 131072 -> 512, no class weights; two losses (context,
# spatial), OHEM as there (DDRHead calls them without `ignore_index`, and
# OhemCrossEntropy ignores 255 itself)
DDR = dict(
    type='DDRHead',
    in_channels=16,
    channels=8,
    dropout_ratio=0.,
    num_classes=K,
    align_corners=False,
    norm_cfg=BN,
    loss_decode=[
        dict(type='OhemCrossEntropy', thres=0.9, min_kept=512,
             loss_weight=1.0),
        dict(type='OhemCrossEntropy', thres=0.9, min_kept=512,
             loss_weight=0.4),
    ])
DDR_SIDE = 8


def ddr_inputs(seed=0):
    """``(c3_feat, c5_feat)`` as DDRNet hands them to the head in training
    (the head reads ``c5_feat`` alone at test time)."""
    g = torch.Generator().manual_seed(seed)
    c3 = torch.randn(N, DDR['in_channels'] // 2, DDR_SIDE, DDR_SIDE,
                     generator=g)
    c5 = torch.randn(N, DDR['in_channels'], DDR_SIDE, DDR_SIDE, generator=g)
    return c3, c5


def build_ddr_pair(anchor_losses='sar'):
    torch.manual_seed(0)
    bare = MODELS.build(copy.deepcopy(DDR))
    torch.manual_seed(1)
    sar = MODELS.build(sar_cfg(DDR, anchor_losses))
    return bare, sar


def test_ddr_head_keeps_its_child_named_head_and_its_state_dict_layout():
    bare, sar = build_ddr_pair()
    assert isinstance(sar, DDRHead) and isinstance(sar, SARHead)
    assert type(sar) is sar_class(DDRHead)
    # `head` is DDRHead's own conv block, not a wrapped head
    assert isinstance(sar.head, nn.Sequential)
    assert sar.head is sar._modules['head']
    anchor_keys = anchor_keys_of(sar)
    assert anchor_keys
    assert set(sar.state_dict()) == set(bare.state_dict()) | anchor_keys
    assert any(k.startswith('head.') for k in sar.state_dict())
    # DDRHead's init (Kaiming on every Conv2d, constants on every BN of
    # self.modules()) does not reach the anchor losses
    anchors_before = copy.deepcopy(sar.anchor_losses.state_dict())
    sar.init_weights()
    for key, value in sar.anchor_losses.state_dict().items():
        assert_tensors_equal(value, anchors_before[key], key)


def test_ddr_head_checkpoints_load_across_and_predict_the_same(tmp_path):
    bare, sar = build_ddr_pair()
    anchor_keys = anchor_keys_of(sar)
    c3, c5 = ddr_inputs()
    metas = [s.metainfo for s in make_samples()]
    # move the BN statistics of both first
    bare.train()
    sar.train()
    bare.loss((c3, c5), make_samples(), TRAIN_CFG)
    sar.loss((c3, c5), make_samples(), TRAIN_CFG)

    # torch, both ways
    result = MODELS.build(sar_cfg(DDR)).load_state_dict(
        bare.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == without_bn_counters(anchor_keys)
    result = MODELS.build(copy.deepcopy(DDR)).load_state_dict(
        sar.state_dict(), strict=False)
    assert result.missing_keys == []
    assert set(result.unexpected_keys) == anchor_keys

    # mmengine, through files, both ways: equal logits
    for src, dst_cfg in ((bare, sar_cfg(DDR)), (sar, copy.deepcopy(DDR))):
        path = tmp_path / f'{type(src).__name__}.pth'
        torch.save({'state_dict': src.state_dict(), 'meta': {}}, path)
        torch.manual_seed(2)
        dst = MODELS.build(dst_cfg)
        load_checkpoint(dst, str(path), map_location='cpu', strict=False)
        src.eval()
        dst.eval()
        with torch.no_grad():
            ref = src(c5)
            out = dst(c5)
            pred_ref = src.predict(c5, metas, TEST_CFG)
            pred_out = dst.predict(c5, metas, TEST_CFG)
        assert ref.shape == (N, K, DDR_SIDE, DDR_SIDE)
        assert torch.equal(out, ref), type(src).__name__
        assert pred_ref.shape == (N, K, IMG, IMG)
        assert torch.equal(pred_out, pred_ref), type(src).__name__


def test_ddr_head_loss_adds_anchor_terms_on_its_context_feature():
    bare, sar = build_ddr_pair(
        anchor_losses=[dict(type='SARLoss'), dict(type=REC)])
    merged = dict(sar.state_dict(), **bare.state_dict())
    sar.load_state_dict(merged, strict=True)
    bare.train()
    sar.train()
    c3, c5 = ddr_inputs()
    loss_bare = bare.loss((c3, c5), make_samples(), TRAIN_CFG)
    head_hook = PreHook(sar.conv_seg)
    aux_hook = PreHook(sar.aux_cls_seg)
    loss_sar = sar.loss((c3, c5), make_samples(), TRAIN_CFG)
    head_hook.remove()
    aux_hook.remove()
    assert set(loss_bare) == {'loss_context', 'loss_spatial', 'acc_seg'}
    assert set(loss_sar) == set(loss_bare) | SAR_KEYS | SAR_SCALARS | {
        'loss_rec'}
    for key, value in loss_bare.items():
        assert_tensors_equal(loss_sar[key], value, key)
    assert_no_capture(sar)
    # the anchor losses get the context branch's classifier input (the
    # output of DDRHead's `head` block), not the spatial branch's
    call = sar.anchor_losses[1].calls[0]
    assert call['feat'] is head_hook.inputs[0]
    assert call['feat'] is not aux_hook.inputs[0]
    assert call['feat'].shape == (N, DDR['channels'], DDR_SIDE, DDR_SIDE)
    assert call['classifier'] is sar.conv_seg
    assert call['label'].shape == (N, DDR_SIDE, DDR_SIDE)
    # and the anchor terms train the head's `head` block
    (loss_sar['loss_sar_anchor'] + loss_sar['loss_sar_pull'] +
     loss_sar['loss_context']).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in sar.head.parameters())

"""SARHead: the wrapper around any MMSeg decode head.

Every test runs over eight heads (FCN on HRNet-style ``resize_concat``
inputs, PSP, ASPP, DeepLabV3+, UPerNet, SegFormer, OCR inside a
``CascadeEncoderDecoder``, and FCN with a large dropout), either on the head
alone with random multi-level features or inside a full segmentor with a tiny
ResNetV1c-18 backbone, and checks that the wrapper

- predicts / forwards exactly like the bare head,
- adds only its anchor terms to the head's own losses (same values),
- hands the anchor losses the *pre-dropout* classifier input, with labels
  nearest-resized to its size, and the head's ``conv_seg``,
- back-propagates to the backbone and to the SAR projector,
- loads plain-head checkpoints (only the anchor-loss keys missing),
- forwards the attributes segmentors read,
- fails clearly on heads it cannot wrap, and
- survives ``copy.deepcopy`` / ``pickle`` without sharing state.
"""
import copy
import pickle
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import (_load_checkpoint_to_model,
                                        load_checkpoint)
from mmengine.structures import PixelData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from torch import nn

import sar_plugin  # noqa: F401
from sar_plugin.heads.sar_head import FeatureCapture, SARHead

register_all_modules()

N = 2  # batch
K = 5  # classes
IMG = 64  # image side
IN_CH = (8, 16, 32, 64)  # ResNetV1c-18 with base_channels=8
SIZES = (16, 8, 4, 4)  # its output sides on a 64x64 image (strides 1,2,2,1)
BN = dict(type='BN', requires_grad=True)
SAR_KEYS = {'loss_sar_anchor', 'loss_sar_pull'}
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


def build_head_pair(case, anchor_losses='sar', load='copy'):
    """A bare head and a SARHead around the same config, same weights."""
    torch.manual_seed(0)
    bare = MODELS.build(copy.deepcopy(case.head))
    torch.manual_seed(1)
    sar = MODELS.build(sar_cfg(case.head, anchor_losses))
    assert isinstance(sar, SARHead)
    if load == 'copy':
        sar.head.load_state_dict(bare.state_dict(), strict=True)
    else:  # plain state dict into the wrapper: exercises the key remapping
        result = sar.load_state_dict(bare.state_dict(), strict=False)
        assert result.unexpected_keys == []
        assert set(result.missing_keys) == without_bn_counters({
            k
            for k in sar.state_dict() if k.startswith('anchor_losses.')
        })
    for key, value in bare.state_dict().items():
        assert torch.equal(sar.head.state_dict()[key], value), key
    return bare, sar


def without_bn_counters(keys):
    """Drop BN ``num_batches_tracked`` keys: torch fills them in itself when a
    checkpoint has no version metadata for a BN layer (as for the anchor
    losses of a plain checkpoint), so they are never reported missing."""
    return {k for k in keys if not k.endswith('num_batches_tracked')}


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


# ------------------------------------------------------ a. equivalence
@all_cases
@pytest.mark.parametrize('load', ['copy', 'remap'])
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
    assert sar._capture.feats == [] and not sar._capture.active


@all_cases
def test_segmentor_predict_and_forward_equal_plain_segmentor(name):
    case = CASES[name]
    plain = build_segmentor(case, sar=False, seed=0)
    sar = build_segmentor(case, sar=True, seed=1)
    result = sar.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
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


# ------------------------------------------------------------- b. loss()
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
    assert set(loss_sar) == set(loss_bare) | SAR_KEYS
    assert not (set(loss_bare) & SAR_KEYS)
    for key, value in loss_bare.items():
        assert_tensors_equal(loss_sar[key], value, key)
    for key in SAR_KEYS:
        assert loss_sar[key].dim() == 0 and torch.isfinite(loss_sar[key])
        assert loss_sar[key].requires_grad, key
    # the anchor CE of random anchors through a random classifier is > 0
    assert loss_sar['loss_sar_anchor'] > 0
    assert sar._capture.feats == [] and not sar._capture.active


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
        for k in SAR_KEYS
    }
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
    assert sar._capture.feats == []


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


# ----------------------------------------------------------- c. backward
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
    conv_seg = sar_head_of(model).head.conv_seg
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
    conv_seg = sar_head_of(model).head.conv_seg
    assert conv_seg.weight.grad is None or not conv_seg.weight.grad.any()


# ------------------------------------------------- d. captured feature
@all_cases
def test_captured_feature_is_classifier_input_before_dropout(name):
    case = CASES[name]
    torch.manual_seed(0)
    sar = MODELS.build(sar_cfg(case.head, [dict(type=REC)]))
    sar.train()
    head = sar.head
    rec = sar.anchor_losses[0]
    # filled from the head
    assert rec.num_classes == K
    assert rec.channels == head.channels
    assert rec.ignore_index == head.ignore_index == 255
    conv_hook = PreHook(head.conv_seg)
    drop_hook = PreHook(head.dropout) if head.dropout is not None else None
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
    assert feat.shape == (N, head.channels, side, side)
    assert feat.requires_grad
    assert call['classifier'] is head.conv_seg
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
    head = sar.head
    assert isinstance(head.dropout, nn.Dropout2d) and head.dropout.p == 0.5
    conv_hook, drop_hook = PreHook(head.conv_seg), PreHook(head.dropout)
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
    conv_hook = PreHook(head.conv_seg)
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


# --------------------------------------------------- e. label resizing
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


# --------------------------------------------------------- f. checkpoint
@all_cases
def test_plain_checkpoint_loads_into_sar_model(name, tmp_path):
    case = CASES[name]
    plain = build_segmentor(case, sar=False, seed=0)
    plain_sd = plain.state_dict()
    prefix = sar_prefix(case)

    def sar_key(key):
        if key.startswith(prefix):
            return prefix + 'head.' + key[len(prefix):]
        return key

    # torch
    sar = build_segmentor(case, sar=True, seed=1)
    anchor_keys = {
        k
        for k in sar.state_dict() if k.startswith(prefix + 'anchor_losses.')
    }
    assert anchor_keys  # projector weights, anchors, EMA state
    result = sar.load_state_dict(plain_sd, strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == without_bn_counters(anchor_keys)
    sar_sd = sar.state_dict()
    assert set(sar_sd) == {sar_key(k) for k in plain_sd} | anchor_keys
    for key, value in plain_sd.items():
        assert_tensors_equal(sar_sd[sar_key(key)], value, key)
    # the caller's state dict is not modified by the remapping
    assert set(plain_sd) == set(plain.state_dict())

    # mmengine, as `load_from` does it (through a file)
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': plain_sd, 'meta': {}}, path)
    sar = build_segmentor(case, sar=True, seed=2)
    load_checkpoint(sar, str(path), map_location='cpu', strict=False)
    sar_sd = sar.state_dict()
    for key, value in plain_sd.items():
        assert_tensors_equal(sar_sd[sar_key(key)], value, key)
    # strict mode reports exactly the anchor-loss keys as missing
    sar = build_segmentor(case, sar=True, seed=3)
    with pytest.raises(RuntimeError) as err:
        _load_checkpoint_to_model(
            sar, {'state_dict': copy.copy(plain_sd)}, strict=True)
    msg = str(err.value)
    assert 'unexpected key' not in msg
    assert 'missing keys in source state_dict' in msg
    missing = msg.split('missing keys in source state_dict:')[1]
    missing = {k.strip() for k in missing.strip().split(',')}
    assert missing == without_bn_counters(anchor_keys)


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
    for key, value in plain.state_dict().items():
        key = key.replace('decode_head.', 'decode_head.head.', 1)
        assert_tensors_equal(sar.state_dict()[key], value, key)


def test_init_weights_reaches_the_wrapped_head():
    case = CASES['psp']
    model = build_segmentor(case)
    model.init_weights()
    conv_seg = sar_head_of(model).head.conv_seg
    # BaseDecodeHead's init_cfg: Normal(std=0.01) on conv_seg, zero bias
    assert conv_seg.weight.std() < 0.03
    assert not conv_seg.bias.any()


# ------------------------------------------------ g. forwarded attributes
ATTRS = ('num_classes', 'out_channels', 'align_corners', 'ignore_index',
         'threshold', 'loss_decode', 'channels', 'in_channels', 'in_index',
         'dropout', 'conv_seg')


@all_cases
def test_attributes_are_forwarded_to_the_head(name):
    case = CASES[name]
    sar = MODELS.build(sar_cfg(case.head))
    for attr in ATTRS:
        assert getattr(sar, attr) is getattr(sar.head, attr), attr
    assert sar.num_classes == K and sar.out_channels == K
    # unknown attributes still raise AttributeError (hasattr works)
    assert not hasattr(sar, 'no_such_attribute_xyz')
    model = build_segmentor(case)
    assert model.num_classes == K
    assert model.out_channels == K
    assert model.align_corners is False


def test_non_default_attributes_are_forwarded():
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
    assert sar.threshold == sar.head.threshold == 0.3
    case = CASES['ocr_cascade']
    cascade = MODELS.build(
        dict(
            segmentor_cfg(case),
            decode_head=[
                dict(case.prev, align_corners=True),
                sar_cfg(dict(case.head, align_corners=True))
            ]))
    assert cascade.align_corners is True
    assert cascade.num_classes == K and cascade.out_channels == K


# ------------------------------------------------------------- h. errors
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
    assert not sar._capture.active and sar._capture.feats == []
    # without anchor losses there is nothing to capture: no error
    sar = MODELS.build(sar_cfg(cfg, anchor_losses=None))
    assert 'loss_ce' in sar.loss(make_feats(), make_samples(), TRAIN_CFG)


@pytest.mark.parametrize('head_type',
                         ['SARTestNotAHead', 'SARTestClsSegWithoutConvSeg'])
def test_unwrappable_head_raises_type_error_at_construction(head_type):
    with pytest.raises(TypeError, match=head_type):
        MODELS.build(sar_cfg(dict(type=head_type)))


def test_capture_is_reset_when_the_head_raises():
    case = CASES['psp']
    sar = MODELS.build(sar_cfg(case.head))
    with pytest.raises(IndexError):
        # too few levels for in_index=3: the head fails inside its forward
        sar.loss(make_feats()[:2], make_samples(), TRAIN_CFG)
    assert not sar._capture.active
    losses = sar.loss(make_feats(), make_samples(), TRAIN_CFG)
    assert SAR_KEYS <= set(losses)


def test_anchor_loss_errors_are_clear():
    case = CASES['psp']
    with pytest.raises(ValueError, match="'type'"):
        MODELS.build(sar_cfg(case.head, [dict(loss_weight=1.0)]))
    with pytest.raises(KeyError, match='NoSuchAnchorLoss'):
        MODELS.build(sar_cfg(case.head, [dict(type='NoSuchAnchorLoss')]))


# ---------------------------------------------------- i. deepcopy, pickle
def _check_capture_bound_to(sar_head):
    assert isinstance(sar_head._capture, FeatureCapture)
    assert sar_head.head.cls_seg is sar_head._capture
    assert sar_head._capture.cls_seg.__self__ is sar_head.head


@pytest.mark.parametrize('name', ['psp', 'ocr_cascade', 'fcn_dropout'])
def test_deepcopy_records_in_the_copy_only(name):
    case = CASES[name]
    model = build_segmentor(
        case, anchor_losses=[dict(type='SARLoss'),
                             dict(type=REC)])
    clone = copy.deepcopy(model)
    orig_head, clone_head = sar_head_of(model), sar_head_of(clone)
    _check_capture_bound_to(orig_head)
    _check_capture_bound_to(clone_head)
    assert clone_head._capture is not orig_head._capture
    assert clone_head.head is not orig_head.head

    orig_hook = PreHook(orig_head.head.conv_seg)
    clone_hook = PreHook(clone_head.head.conv_seg)
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
    assert orig_head._capture.feats == [] and not orig_head._capture.active
    clone.parse_losses(losses)[0].backward()
    assert all(p.grad is None for p in model.parameters())
    assert any(p.grad is not None for p in clone.parameters())

    # the original still works on its own, and records into itself only
    model.train()
    losses = model.loss(make_images(), make_samples())
    assert {f'{prefix}.{k}' for k in SAR_KEYS} <= set(losses)
    assert len(orig_head.anchor_losses[1].calls) == 1
    assert len(clone_head.anchor_losses[1].calls) == 1


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
        sar_head_of(clone).head.conv_seg.bias.add_(1.0)
        a, b = model._forward(make_images()), clone._forward(make_images())
    torch.testing.assert_close(b, a + 1.0)


def test_pickle_round_trip_keeps_the_capture_bound():
    case = CASES['ocr_cascade']
    model = build_segmentor(case)
    clone = pickle.loads(pickle.dumps(model))
    clone_head = sar_head_of(clone)
    _check_capture_bound_to(clone_head)
    clone.train()
    losses = clone.loss(make_images(), make_samples())
    assert {f'decode_1.{k}' for k in SAR_KEYS} <= set(losses)

"""Every feature loss, the loss kernels, an anchor head and one training
step of a tiny model, on each device: ``cpu``, and ``cuda`` when
``torch.cuda.is_available()`` (skipped with the reason otherwise).

Each case runs on the device in float32 (and from bf16/fp16 features, and
under bf16/fp16 autocast) and is compared with the same computation on the
CPU in float64, the precision in which the rest of the suite checks these
against loop references (``test_anchor_losses.py``, ``test_sar_loss.py``,
``test_losses_fast.py``): values, gradients (features, classifier, the
losses' own parameters), the losses' buffers after training calls, and the
ignore semantics (the device's features hold NaN at every ignored pixel;
the reference's hold finite random values there, so anything that leaks
from an ignored pixel into a value, a gradient or a buffer fails).

CUDA only: a ``GradScaler`` step skipped on an overflowing fp16 gradient
leaves the anchor state untouched (``AnchorStateHook``), the CUDA generator
state round-trips through a checkpoint (``capture_rng_state`` /
``restore_rng_state``), and a training call of every loss (with
``validate_labels=False``) makes no host sync
(``torch.cuda.set_sync_debug_mode('error')``).

``pytest tests/test_devices.py -k cuda`` runs the CUDA cases alone,
``-k cpu`` the CPU ones; ``tools/device_check.py`` runs them and reports.
"""
import copy
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from amp_helpers import ScaledOptimWrapper

import sar_plugin  # noqa: F401  (registers SARHead and the losses)
from sar_plugin.losses import (FEATURE_LOSSES, ANCMLoss, CenterLoss,
                               HALLoss, LargeMarginLoss, LDMATLoss, SARLoss)
from sar_plugin.losses.kernels import (masked_rows, masked_sq_dist,
                                       pixel_anchor_logits)

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = 'CUDA is not available (torch.cuda.is_available() is False)'
CUDA = pytest.param('cuda', id='cuda',
                    marks=pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA))
DEVICES = [pytest.param('cpu', id='cpu'), CUDA]
LOW = {'bf16': torch.bfloat16, 'fp16': torch.float16}

K, C = 4, 6
# float32 on the device against float64 on the CPU
TOL = dict(rtol=1e-4, atol=1e-5)

# every feature loss, in the configurations that change its code path;
# LDMAT's sampling draws from a per-device generator (another stream on
# CUDA), so it runs here with all its samples (max_samples > pixels)
LOSS_CASES = [
    ('sar', SARLoss, {}),
    ('sar_cosine_latched', SARLoss, dict(pull='cosine', gate='latched')),
    ('ancm', ANCMLoss, dict(anchor_scale=2.0)),
    ('ancm_cosine', ANCMLoss, dict(distance='cosine', scale=4.0)),
    ('ancm_weighted', ANCMLoss, dict(class_weight=[1.0, 2.0, 0.5, 3.0])),
    ('hal', HALLoss, {}),
    ('ldmat', LDMATLoss, {}),
    ('ldmat_nohinge', LDMATLoss, dict(hinge=False, normalize=False)),
    ('large_margin', LargeMarginLoss, dict(margin=2.0, lambda_m=0.7)),
    ('center', CenterLoss, {}),
    ('center_ema', CenterLoss, dict(center_mode='ema', momentum=0.7)),
]
LOSS_IDS = [case[0] for case in LOSS_CASES]


@pytest.fixture(autouse=True)
def _full_float32():
    """float32 as IEEE float32 on CUDA: no TF32 in convolutions and
    products (cuDNN's default allows it), whose 10-bit mantissa is not what
    a float32 comparison with float64 tests. (No effect on the CPU.)"""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


def test_every_feature_loss_is_covered():
    assert {case[1] for case in LOSS_CASES} == set(FEATURE_LOSSES)


# ------------------------------------------------------------------ helpers
def make_batch(seed, n=2, h=5, w=6):
    """float64 features (finite everywhere) and labels with ignored pixels
    (a block and a random ~15 %), every class present."""
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, C, h, w, generator=gen, dtype=torch.float64)
    label = torch.randint(K, (n, h, w), generator=gen)
    label[0, :2, :2] = 255
    label[torch.rand(n, h, w, generator=gen) < 0.15] = 255
    label[1, -1, :K] = torch.arange(K)
    return feat, label


def with_nan_at_ignored(feat, label):
    ignored = (label == 255)[:, None].expand_as(feat)
    return torch.where(ignored, float('nan'), feat)


def sar_classifier(loss, scale=math.log(17.0)):
    """A float64 1x1 conv mapping SAR's embedded anchors to ``scale * I``:
    each anchor's own-class probability is 17 / 20 = 0.85, above
    ``update_conf`` (0.8: the gate opens and the pull acts) and below
    ``filter_conf`` (0.9: the anchor loss keeps every anchor, so the
    classifier gets a gradient), far from both thresholds."""
    with torch.no_grad():
        emb = copy.deepcopy(loss.projector).double()(loss.anchors.double())
        weight = scale * torch.linalg.pinv(emb).t()
    conv = nn.Conv2d(C, K, 1).double()
    with torch.no_grad():
        conv.weight.copy_(weight[:, :, None, None])
        conv.bias.zero_()
    return conv


def classifier_for(loss):
    if isinstance(loss, SARLoss):
        return sar_classifier(loss)
    torch.manual_seed(1)
    return nn.Conv2d(C, K, 1).double()


def build_pair(case, device, dtype=torch.float32):
    """The float64 CPU reference loss and classifier, and copies of both on
    ``device`` in ``dtype``."""
    _, cls, kwargs = next(c for c in LOSS_CASES if c[0] == case)
    ref = cls(num_classes=K, channels=C, loss_weight=1.5, **kwargs)
    ref = ref.double().train()
    clf = classifier_for(ref)
    loss = copy.deepcopy(ref).to(device, dtype).train()
    return (ref, clf), (loss, copy.deepcopy(clf).to(device, dtype))


def terms_of(out):
    return out if isinstance(out, dict) else {'loss': out}


def close(got, want, what, rtol, atol):
    torch.testing.assert_close(
        got.detach().cpu().double(), want.detach().cpu().double(),
        rtol=rtol, atol=atol, msg=lambda m: f'{what}: {m}')


def grads_of(*modules):
    return {f'{i}.{name}': p.grad for i, m in enumerate(modules)
            for name, p in m.named_parameters() if p.requires_grad}


def train_call(loss, clf, feat, label, autocast=None):
    """One training call and its backward: ``(terms, feature gradient,
    parameter gradients)``; gradients are zeroed first."""
    for p in list(loss.parameters()) + list(clf.parameters()):
        p.grad = None
    feat = feat.detach().requires_grad_(True)
    if autocast is None:
        out = loss(feat, label, classifier=clf)
    else:
        with torch.autocast(feat.device.type, dtype=autocast):
            out = loss(feat, label, classifier=clf)
    terms = terms_of(out)
    sum(terms.values()).backward()
    return terms, feat.grad, grads_of(loss, clf)


def compare_steps(ref, ref_clf, loss, clf, device, feat_dtype=torch.float32,
                  autocast=None, steps=2, grad_tol=TOL):
    """``steps`` training calls of both (different batches, so that state
    moves), compared after each: terms, gradients, buffers. The device
    gets NaN at the ignored pixels and its features in ``feat_dtype`` (the
    reference gets the same rounded values in float64)."""
    for step in range(steps):
        feat, label = make_batch(seed=step)
        dev_feat = with_nan_at_ignored(feat, label).to(feat_dtype)
        feat = torch.where(label[:, None] == 255, feat, dev_feat.double())
        want, want_grad, want_param_grads = train_call(ref, ref_clf, feat,
                                                       label)
        got, grad, param_grads = train_call(
            loss, clf, dev_feat.to(device), label.to(device), autocast)
        assert set(got) == set(want)
        for name, value in got.items():
            assert value.device.type == device and value.shape == ()
            assert value.dtype == torch.float32, name
            close(value, want[name], f'step {step}: {name}', **TOL)
        assert grad.dtype == dev_feat.dtype
        assert bool(torch.isfinite(grad).all()), 'non-finite feature grad'
        ignored = (label == 255)[:, None].expand_as(feat).to(device)
        assert bool((grad[ignored] == 0).all()), 'gradient at ignored pixels'
        close(grad, want_grad, f'step {step}: feature gradient', **grad_tol)
        assert set(param_grads) == set(want_param_grads)
        for name, g in param_grads.items():
            w = want_param_grads[name]
            if w is None:
                assert g is None or not bool(g.any()), name
            else:
                close(g, w, f'step {step}: gradient of {name}', **TOL)
        compare_state(ref, loss, f'step {step}')


def compare_state(ref, loss, when):
    want = ref.state_dict()
    got = loss.state_dict()
    assert set(got) == set(want)
    for name, value in got.items():
        if value.is_floating_point():
            close(value, want[name], f'{when}: buffer {name}', **TOL)
        else:
            assert torch.equal(value.cpu(), want[name]), f'{when}: {name}'


def check_premise(loss):
    """SAR's cases exercise all of SAR: the gate opened."""
    if isinstance(loss, SARLoss):
        assert bool(loss.gate_open), 'the gate did not open'
        assert int(loss.num_updates) > 0


# ------------------------------------------------------------ feature losses
@pytest.mark.parametrize('case', LOSS_IDS)
@pytest.mark.parametrize('device', DEVICES)
def test_loss_float32_matches_the_float64_reference(device, case):
    (ref, ref_clf), (loss, clf) = build_pair(case, device)
    compare_steps(ref, ref_clf, loss, clf, device)
    check_premise(loss)
    check_premise(ref)


@pytest.mark.parametrize('low', list(LOW))
@pytest.mark.parametrize('case', LOSS_IDS)
@pytest.mark.parametrize('device', DEVICES)
def test_loss_under_autocast_matches_the_float64_reference(device, case, low):
    """Under autocast the loss computes in float32 (autocast is off inside
    ``compute``): the same values and gradients as float32."""
    (ref, ref_clf), (loss, clf) = build_pair(case, device)
    compare_steps(ref, ref_clf, loss, clf, device, autocast=LOW[low])
    check_premise(loss)


@pytest.mark.parametrize('low', list(LOW))
@pytest.mark.parametrize('case', LOSS_IDS)
@pytest.mark.parametrize('device', DEVICES)
def test_low_precision_features_match_the_float64_reference(device, case,
                                                            low):
    """bf16/fp16 features (as an autocast network gives them): the loss
    upcasts them, so values, parameter gradients and buffers are float32
    ones of the rounded features; the feature gradient is in their dtype."""
    (ref, ref_clf), (loss, clf) = build_pair(case, device)
    compare_steps(ref, ref_clf, loss, clf, device, feat_dtype=LOW[low],
                  grad_tol=dict(rtol=2e-2, atol=2e-3))
    check_premise(loss)


@pytest.mark.parametrize('case', LOSS_IDS)
@pytest.mark.parametrize('device', DEVICES)
def test_loss_eval_call_changes_no_state(device, case):
    (ref, ref_clf), (loss, clf) = build_pair(case, device)
    compare_steps(ref, ref_clf, loss, clf, device, steps=1)
    before = copy.deepcopy(loss.state_dict())
    feat, label = make_batch(seed=5)
    loss.eval()
    out = terms_of(loss(with_nan_at_ignored(feat, label).float().to(device),
                        label.to(device), classifier=clf))
    assert all(bool(torch.isfinite(v)) for v in out.values())
    for name, value in loss.state_dict().items():
        assert torch.equal(value, before[name]), name


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize('channels_last', [False, True],
                         ids=['contiguous', 'channels_last'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16,
                                   torch.float16],
                         ids=['float32', 'bf16', 'fp16'])
@pytest.mark.parametrize('device', DEVICES)
def test_kernels_match_the_float64_reference(device, dtype, channels_last):
    """``masked_rows``, ``masked_sq_dist`` (to the features and to the
    centres) and ``pixel_anchor_logits`` (plain and normalised) against
    eager float64 code on the masked features; NaN where not kept, and a
    non-finite upstream gradient there, reach nothing."""
    gen = torch.Generator().manual_seed(3)
    n, c, h, w, k = 2, 5, 4, 3, 4
    feat = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    keep = torch.rand(n, h, w, generator=gen) > 0.3
    keep[0, 0, 0] = True
    if dtype != torch.float16:  # (its normalised gradient, 3e12, is inf)
        feat[0, :, 0, 0] = 0.0  # a zero feature: the clamped norm
    index = torch.randint(k, (n * h * w,), generator=gen)
    centers = torch.randn(k, c, generator=gen, dtype=torch.float64)
    dev_feat = torch.where(keep[:, None], feat, float('nan')).to(device,
                                                                 dtype)
    if channels_last:
        dev_feat = dev_feat.contiguous(memory_format=torch.channels_last)
    # the reference sees the device's rounded values, zero where not kept
    clean = torch.where(keep[:, None], dev_feat.cpu().double(), 0.0)
    dkeep = keep.to(device)
    low = dtype != torch.float32
    grad_tol = dict(rtol=2e-2, atol=2e-3) if low else TOL
    flat_keep = keep.reshape(-1)
    kept_map = keep[:, None].expand(n, c, h, w)

    def leaf():
        return dev_feat.detach().clone().requires_grad_(True)

    def check_grad(grad, want, what):
        assert grad.dtype == dtype and grad.device.type == device
        assert grad.is_contiguous(
            memory_format=torch.channels_last) == channels_last, what
        assert bool((grad.cpu()[~kept_map] == 0).all()), what
        close(grad, want, what, **grad_tol)

    # masked_rows: M x C rows in NHWC order, float32
    x = leaf()
    rows = masked_rows(x, dkeep)
    assert rows.dtype == torch.float32
    want_rows = clean.permute(0, 2, 3, 1).reshape(-1, c)
    close(rows, want_rows, 'masked_rows', **TOL)
    weight = torch.randn(rows.shape, generator=gen, dtype=torch.float64)
    upstream = torch.where(flat_keep[:, None], weight, float('inf'))
    rows.backward(upstream.float().to(device))
    want = torch.where(kept_map, weight.view(n, h, w, c).permute(0, 3, 1, 2),
                       0.0)
    check_grad(x.grad, want, 'masked_rows gradient')

    # masked_sq_dist, with a gradient to the centres too
    x = leaf()
    dev_centers = centers.float().to(device).requires_grad_(True)
    ref_x = clean.clone().requires_grad_(True)
    ref_centers = centers.float().double().requires_grad_(True)
    dist = masked_sq_dist(x, dev_centers, index.to(device), dkeep)
    assert dist.dtype == torch.float32
    target = ref_centers[index].view(n, h, w, c).permute(0, 3, 1, 2)
    want_dist = torch.where(flat_keep,
                            (ref_x - target).pow(2).sum(1).reshape(-1), 0.0)
    close(dist, want_dist, 'masked_sq_dist', **TOL)
    weight = torch.randn(dist.shape, generator=gen, dtype=torch.float64)
    dist.backward(torch.where(flat_keep, weight, float('inf')).float()
                  .to(device))
    (want_dist * torch.where(flat_keep, weight, 0.0)).sum().backward()
    check_grad(x.grad, ref_x.grad, 'masked_sq_dist gradient')
    assert bool(torch.isfinite(dev_centers.grad).all())
    close(dev_centers.grad, ref_centers.grad, 'masked_sq_dist centre grad',
          **(dict(rtol=2e-2, atol=2e-2) if low else TOL))

    # pixel_anchor_logits, plain and normalised
    for normalize in (False, True):
        x = leaf()
        ref_x = clean.clone().requires_grad_(True)
        z = pixel_anchor_logits(x, centers.float().to(device), dkeep,
                                normalize, scale=3.0)
        assert z.dtype == torch.float32 and z.shape == (n, k, h * w)
        want_z = torch.einsum('kc,nchw->nkhw', centers.float().double(),
                              ref_x)
        if normalize:
            norm = ref_x.norm(dim=1, keepdim=True).clamp(min=1e-12)
            want_z = want_z * 3.0 / norm
        want_z = want_z.reshape(n, k, h * w)
        kept = keep.reshape(n, 1, h * w).expand(n, k, h * w)
        close(z.cpu()[kept], want_z[kept], f'pixel_anchor_logits '
              f'(normalize={normalize})', **TOL)
        weight = torch.randn(z.shape, generator=gen, dtype=torch.float64)
        z.backward(torch.where(kept, weight, float('inf')).float().to(device))
        (want_z * torch.where(kept, weight, 0.0)).sum().backward()
        check_grad(x.grad, ref_x.grad,
                   f'pixel_anchor_logits gradient (normalize={normalize})')


# ------------------------------------------------------- head and training
BN = dict(type='BN', requires_grad=True)


def fcn_head(in_channels=8):
    return dict(type='FCNHead', in_channels=in_channels, in_index=0,
                channels=C, num_convs=1, kernel_size=3, concat_input=False,
                dropout_ratio=0, num_classes=K, norm_cfg=BN,
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0,
                                 avg_non_ignore=True))


def sar_head_cfg(in_channels=8):
    return dict(type='SARHead', head=fcn_head(in_channels),
                anchor_losses=[dict(type='SARLoss', anchor_seed=3)])


def open_the_gate(head):
    """Set the head's ``conv_seg`` so that its SAR loss' gate opens."""
    conv = sar_classifier(head.anchor_losses[0])
    with torch.no_grad():
        head.conv_seg.weight.copy_(conv.weight)
        head.conv_seg.bias.zero_()


def make_samples(size, seed=0, device='cpu'):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(2):
        label = torch.randint(K, (1, size, size), generator=gen)
        label[:, :size // 4, :size // 4] = 255
        sample = SegDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            pad_shape=(size, size), img_path=f'synthetic_{i}.png',
            seg_map_path=f'synthetic_{i}_label.png'))
        sample.gt_sem_seg = PixelData(data=label.to(device))
        samples.append(sample)
    return samples


def compare_modules(ref, model, what):
    """Parameter gradients and buffers of two copies of a module."""
    got = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        if p.grad is None:
            assert got[name].grad is None or not bool(got[name].grad.any())
        else:
            scale = float(p.grad.abs().max())
            # (a gradient that is 0 in exact arithmetic, e.g. of a bias
            # before a batch norm, is float32 cancellation noise here)
            close(got[name].grad, p.grad, f'{what}: gradient of {name}',
                  rtol=1e-3, atol=max(1e-4 * scale, 1e-6))
    buffers = dict(model.named_buffers())
    for name, b in ref.named_buffers():
        if b.is_floating_point():
            close(buffers[name], b, f'{what}: buffer {name}', rtol=1e-4,
                  atol=1e-5)
        else:
            assert torch.equal(buffers[name].cpu(), b), f'{what}: {name}'


@pytest.mark.parametrize('device', DEVICES)
def test_sar_head_forward_and_loss_match_the_float64_reference(device):
    torch.manual_seed(0)
    head = MODELS.build(sar_head_cfg())
    assert type(head).__name__ == 'SARFCNHead'
    open_the_gate(head)
    head.train()
    ref = copy.deepcopy(head).double()
    head = head.to(device)
    gen = torch.Generator().manual_seed(1)
    feat = torch.randn(2, 8, 8, 8, generator=gen, dtype=torch.float64)
    # forward: the head's own logits
    logits = head((feat.float().to(device),))
    assert logits.device.type == device and logits.shape == (2, K, 8, 8)
    close(logits, ref((feat,)), 'forward logits', **TOL)
    # loss: the head's terms and SAR's, gradients, SAR's buffers
    want = ref.loss((feat,), make_samples(16), {})
    got = head.loss((feat.float().to(device),), make_samples(16,
                                                             device=device),
                    {})
    assert set(got) == set(want) >= {'loss_ce', 'loss_sar_anchor',
                                     'loss_sar_pull'}
    for name in want:
        if name.startswith('loss_'):
            close(got[name], want[name], name, **TOL)
    assert float(want['loss_sar_pull'].detach()) > 0  # the gate opened
    sum(v for k, v in want.items() if k.startswith('loss_')).backward()
    sum(v for k, v in got.items() if k.startswith('loss_')).backward()
    compare_modules(ref, head, 'SARHead')


def tiny_segmentor(size):
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
            seg_pad_val=255, size=(size, size)),
        backbone=dict(
            type='ResNetV1c', depth=18, base_channels=8, stem_channels=8,
            num_stages=4, out_indices=(3, ), strides=(1, 2, 2, 1),
            dilations=(1, 1, 1, 2), contract_dilation=True, norm_cfg=BN,
            style='pytorch'),
        decode_head=sar_head_cfg(in_channels=64),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


@pytest.mark.parametrize('device', DEVICES)
def test_training_step_of_a_tiny_model_matches_the_float64_reference(device):
    """``model.train_step`` (data preprocessor, forward, losses, backward,
    SGD step) of a tiny ResNet + SARHead(FCNHead) in float32 on the device
    against the same step in float64 on the CPU: logged losses, the
    update of every parameter (SGD with lr 1: minus the gradient) and
    every buffer (BN statistics, SAR's state)."""
    size = 32
    torch.manual_seed(0)
    model = MODELS.build(tiny_segmentor(size))
    open_the_gate(model.decode_head)
    model.train()
    ref = copy.deepcopy(model).double()
    start = copy.deepcopy(ref.state_dict())
    model = model.to(device)
    gen = torch.Generator().manual_seed(2)
    images = [torch.randint(256, (3, size, size), generator=gen,
                            dtype=torch.uint8) for _ in range(2)]

    # reference: what train_step does, in float64
    data = ref.data_preprocessor(dict(inputs=list(images),
                                      data_samples=make_samples(size)), True)
    data['inputs'] = data['inputs'].double()
    ref_opt = torch.optim.SGD(ref.parameters(), lr=1.0)
    want_loss, want_log = ref.parse_losses(ref(**data, mode='loss'))
    ref_opt.zero_grad()
    want_loss.backward()
    ref_opt.step()

    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1.0))
    got_log = model.train_step(
        dict(inputs=[im.to(device) for im in images],
             data_samples=make_samples(size, device=device)), wrapper)
    assert set(got_log) == set(want_log)
    assert 'decode.loss_sar_pull' in got_log
    assert float(want_log['decode.loss_sar_pull'].detach()) > 0  # gate open
    for name, value in got_log.items():
        assert bool(torch.isfinite(torch.as_tensor(value))), name
        if 'loss' in name:  # (acc_seg is an argmax count: not compared)
            close(torch.as_tensor(value), want_log[name], name, **TOL)
    got = model.state_dict()
    params = dict(ref.named_parameters())
    for name, value in ref.state_dict().items():
        if name in params:  # the step: compare the updates
            delta = value - start[name]
            scale = float(delta.abs().max())
            close(got[name].double().cpu() - start[name], delta,
                  f'update of {name}', rtol=1e-3,
                  atol=max(1e-4 * scale, 1e-5))
        elif value.is_floating_point():
            close(got[name], value, f'buffer {name}', rtol=1e-4, atol=1e-5)
        else:
            assert torch.equal(got[name].cpu(), value), name
    assert bool(model.decode_head.anchor_losses[0].gate_open)


# ------------------------------------------------------------ CUDA only
@pytest.mark.parametrize('device', [CUDA])
def test_cuda_skipped_amp_step_restores_anchor_state(device):
    """fp16 autocast with ``torch.amp.GradScaler('cuda')``: a step whose
    gradient overflows is skipped by the scaler, and ``AnchorStateHook``
    puts the anchor state (LargeMargin's centres, which every step moves)
    back as it was; normal steps move it."""
    from sar_plugin.engine import AnchorStateHook

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 4, 1)
            self.clf = nn.Conv2d(4, 3, 1)
            self.loss = LargeMarginLoss(num_classes=3, channels=4)

        def forward(self, x, label):
            with torch.autocast('cuda', dtype=torch.float16):
                feat = self.body(x)
            assert feat.dtype == torch.float16
            out = self.loss(feat, label, classifier=self.clf)
            return sum(out.values())

    model = Toy().to(device).train()
    wrapper = ScaledOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                                 'cuda')
    runner = SimpleNamespace(model=model, optim_wrapper=wrapper, iter=0)
    hook = AnchorStateHook()
    hook.before_train(runner)
    x = torch.randn(2, 3, 4, 4, device=device)
    label = torch.randint(0, 3, (2, 4, 4), device=device)

    def step(poison):
        hook.before_train_iter(runner, 0)
        loss = model(x, label)
        handle = model.body.weight.register_hook(
            lambda g: torch.full_like(g, float('inf')) if poison else g)
        wrapper.update_params(loss)
        hook.after_train_iter(runner, 0)
        handle.remove()

    step(poison=False)
    centers = model.loss.centers.clone()
    initialized = model.loss.initialized.clone()
    weight = model.body.weight.detach().clone()
    scale = wrapper.loss_scaler.get_scale()
    step(poison=True)
    assert wrapper.loss_scaler.get_scale() < scale  # the scaler saw inf
    assert torch.equal(model.body.weight, weight)  # the step was skipped
    assert torch.equal(model.loss.centers, centers)  # and so was the update
    assert torch.equal(model.loss.initialized, initialized)
    assert model.loss.centers.device.type == 'cuda'
    step(poison=False)
    assert not torch.equal(model.loss.centers, centers)  # normal steps move
    hook.after_train(runner)


@pytest.mark.parametrize('device', [CUDA])
def test_cuda_generator_state_round_trips_through_a_checkpoint(device,
                                                               tmp_path):
    from sar_plugin.engine import capture_rng_state, restore_rng_state
    torch.cuda.manual_seed_all(7)
    torch.rand(3, device=device)  # move it off its seed
    state = capture_rng_state()
    assert 'cuda' in state
    assert len(state['cuda']) == torch.cuda.device_count()
    path = tmp_path / 'rng.pth'
    torch.save(state, path)
    first = (torch.rand(5, device=device), torch.randn(5, device=device),
             torch.rand(5))
    restore_rng_state(torch.load(path, weights_only=True))
    again = (torch.rand(5, device=device), torch.randn(5, device=device),
             torch.rand(5))
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(torch.rand(5, device=device), first[0])


@pytest.mark.parametrize('case', LOSS_IDS)
@pytest.mark.parametrize('device', [CUDA])
def test_cuda_training_call_makes_no_host_sync(device, case):
    """forward + backward of a training call (``validate_labels=False``:
    the loss then reads no flag on the host) under
    ``torch.cuda.set_sync_debug_mode('error')``."""
    _, cls, kwargs = next(c for c in LOSS_CASES if c[0] == case)
    ref = cls(num_classes=K, channels=C, validate_labels=False,
              **kwargs).double()
    clf = classifier_for(ref).float().to(device)
    loss = ref.float().to(device).train()
    feat, label = make_batch(seed=0)
    feat = with_nan_at_ignored(feat, label).float().to(device)
    label = label.to(device)
    train_call(loss, clf, feat, label)  # warm-up, outside the check
    feat = feat.detach().requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        out = terms_of(loss(feat, label, classifier=clf))
        sum(out.values()).backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert bool(torch.isfinite(feat.grad).all())
    check_premise(loss)

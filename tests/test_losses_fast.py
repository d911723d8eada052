"""The speed-ups of the loss internals equal plain eager code.

``masked_rows``, ``masked_sq_dist`` and
``pixel_anchor_logits`` replace chains of eager ops by autograd functions
with one temporary each way; here each is
compared with the obvious loop or eager version (values and gradients, in
float64 and from bf16/fp16 inputs, contiguous and channels-last, with NaN at
ignored positions), and ``gradcheck`` checks the hand-written backwards.
"""
import pytest
import torch

from sar_plugin.losses.kernels import (all_finite, column_sq_norm,
                                       masked_rows, masked_sq_dist,
                                       pixel_anchor_logits)


def batch(seed=0, n=2, c=5, h=3, w=4, k=4, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    label = torch.randint(k, (n, h, w), generator=gen)
    keep = torch.rand(n, h, w, generator=gen) > 0.3
    centers = torch.randn(k, c, generator=gen, dtype=torch.float64)
    return feat.to(dtype), label, keep, centers


def loop_rows(feat, keep):
    """``M x C`` rows in NHWC order, zero where not kept: by loops."""
    n, c, h, w = feat.shape
    rows = torch.zeros(n * h * w, c, dtype=torch.float64)
    m = 0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if keep[i, y, x]:
                    rows[m] = feat[i, :, y, x].double()
                m += 1
    return rows


def loop_sq_dist(feat, label, keep, centers):
    n, c, h, w = feat.shape
    out = torch.zeros(n * h * w, dtype=torch.float64)
    m = 0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if keep[i, y, x]:
                    d = feat[i, :, y, x].double() - centers[label[i, y, x]]
                    out[m] = sum(float(v) ** 2 for v in d)
                m += 1
    return out


@pytest.mark.parametrize('channels_last', [False, True])
def test_masked_rows_equals_loops_and_masks_the_gradient(channels_last):
    feat, _, keep, _ = batch()
    feat[~keep[:, None].expand_as(feat)] = float('nan')
    if channels_last:
        feat = feat.contiguous(memory_format=torch.channels_last)
    feat.requires_grad_(True)
    rows = masked_rows(feat, keep)
    torch.testing.assert_close(rows, loop_rows(feat.detach().nan_to_num(),
                                               keep))
    weight = torch.randn_like(rows)
    (rows * weight).sum().backward()
    expected = torch.zeros_like(feat)
    n, c, h, w = feat.shape
    grid = weight.view(n, h, w, c).permute(0, 3, 1, 2)
    expected = torch.where(keep[:, None], grid, 0.0)
    assert torch.equal(feat.grad, expected)
    assert feat.grad.is_contiguous(memory_format=torch.channels_last) \
        == channels_last


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_masked_rows_upcasts_low_precision(dtype):
    feat, _, keep, _ = batch(dtype=dtype)
    feat.requires_grad_(True)
    rows = masked_rows(feat, keep)
    assert rows.dtype == torch.float32
    torch.testing.assert_close(rows.double(), loop_rows(feat.detach(), keep))
    rows.sum().backward()
    assert feat.grad.dtype == dtype
    assert torch.equal(feat.grad, keep[:, None].expand_as(feat).to(dtype))


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16])
def test_masked_sq_dist_equals_loops(channels_last, dtype):
    feat, label, keep, centers = batch(dtype=dtype)
    feat[~keep[:, None].expand_as(feat)] = float('nan')
    if channels_last:
        feat = feat.contiguous(memory_format=torch.channels_last)
    feat.requires_grad_(True)
    cdtype = torch.float64 if dtype == torch.float64 else torch.float32
    fast = masked_sq_dist(feat, centers.to(cdtype), label.reshape(-1), keep)
    assert fast.dtype == cdtype
    clean = torch.where(keep[:, None], feat.detach(), 0)
    ref = loop_sq_dist(clean, label, keep, centers.to(cdtype).double())
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float64 else \
        dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.double(), ref, **tol)
    # gradient: 2 (f - s_y) * upstream at kept pixels, exactly 0 elsewhere
    # (even a non-finite upstream gradient at an ignored pixel stays out)
    upstream = torch.randn(fast.shape, dtype=fast.dtype)
    fast.backward(torch.where(keep.reshape(-1), upstream, float('inf')))
    n, c, h, w = feat.shape
    s_y = centers.to(cdtype)[label].permute(0, 3, 1, 2)
    expected = 2 * (clean.to(cdtype) - s_y) * upstream.view(n, 1, h, w)
    expected = torch.where(keep[:, None], expected, 0)
    assert feat.grad.dtype == dtype
    assert bool(torch.isfinite(feat.grad).all())
    assert bool((feat.grad[~keep[:, None].expand_as(feat)] == 0).all())
    # the gradient is in the features' dtype: bf16's own tolerance there
    torch.testing.assert_close(feat.grad, expected.to(dtype))
    assert feat.grad.is_contiguous(memory_format=torch.channels_last) \
        == channels_last


def test_masked_sq_dist_gradients_to_centers():
    feat, label, keep, centers = batch(seed=3)
    feat[~keep[:, None].expand_as(feat)] = float('nan')
    centers.requires_grad_(True)
    index = label.reshape(-1)
    weight = torch.randn(index.shape, dtype=torch.float64)
    (masked_sq_dist(feat, centers, index, keep) * weight).sum().backward()
    fast = centers.grad.clone()
    centers.grad = None
    # eager on the masked rows (NaN rows zeroed and weighted 0)
    rows = loop_rows(feat.nan_to_num(), keep)
    w = torch.where(keep.reshape(-1), weight, 0.0)
    ((rows - centers[index]).pow(2).sum(1) * w).sum().backward()
    torch.testing.assert_close(fast, centers.grad)
    assert bool(torch.isfinite(fast).all())
    clean = torch.where(keep[:, None], feat, 0.0).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f, c: masked_sq_dist(f, c, index, keep), (clean, centers))


def test_column_sq_norm_and_all_finite():
    x = torch.randn(6, 11, dtype=torch.float64)
    torch.testing.assert_close(column_sq_norm(x), (x * x).sum(0))
    # the row-by-row branch of large inputs
    big = torch.randn(3, 2**21 + 1, dtype=torch.float64)
    torch.testing.assert_close(column_sq_norm(big), (big * big).sum(0))
    assert bool(all_finite(x)) and bool(all_finite(x[:0]))
    for bad in (float('nan'), float('inf'), -float('inf')):
        y = x.clone()
        y[2, 3] = bad
        assert not bool(all_finite(y))


@pytest.mark.parametrize('normalize', [False, True])
@pytest.mark.parametrize('channels_last', [False, True])
def test_pixel_anchor_logits_equals_eager(normalize, channels_last):
    feat, _, keep, anchors = batch(seed=5)
    feat[0, :, 0, 0] = 0.0  # a zero feature: the clamped norm
    keep[0, 0, 0] = True
    feat[~keep[:, None].expand_as(feat)] = float('nan')
    if channels_last:
        feat = feat.contiguous(memory_format=torch.channels_last)
    feat.requires_grad_(True)
    fast = pixel_anchor_logits(feat, anchors, keep, normalize, scale=3.0)
    n, c, h, w = feat.shape
    clean = torch.where(keep[:, None], feat, 0.0)  # eager, on masked input
    eager = torch.einsum('kc,nchw->nkhw', anchors, clean)
    if normalize:
        norm = clean.norm(dim=1, keepdim=True).clamp(min=1e-12)
        eager = eager * 3.0 / norm
    eager = eager.reshape(n, -1, h * w)
    kept = keep.reshape(n, 1, h * w).expand_as(fast)
    torch.testing.assert_close(fast[kept], eager[kept])
    upstream = torch.randn(fast.shape, dtype=fast.dtype)
    fast.backward(torch.where(kept, upstream, float('inf')))
    (expected,) = torch.autograd.grad((eager * upstream).sum(), feat)
    assert bool((feat.grad[~keep[:, None].expand_as(feat)] == 0).all())
    torch.testing.assert_close(feat.grad, expected)
    assert feat.grad.is_contiguous(memory_format=torch.channels_last) \
        == channels_last


def test_pixel_anchor_logits_gradcheck_and_bf16():
    feat, _, keep, anchors = batch(seed=6)
    keep[:] = True
    feat.requires_grad_(True)
    for normalize in (False, True):
        assert torch.autograd.gradcheck(
            lambda f: pixel_anchor_logits(f, anchors, keep, normalize, 2.0),
            (feat,))
    low = feat.detach().to(torch.bfloat16).requires_grad_(True)
    z = pixel_anchor_logits(low, anchors.float(), keep, True, 2.0)
    assert z.dtype == torch.float32
    z.sum().backward()
    assert low.grad.dtype == torch.bfloat16


LOSSES = [('SARLoss', {}), ('SARLoss', dict(pull='cosine')), ('ANCMLoss', {}),
          ('ANCMLoss', dict(distance='cosine')), ('HALLoss', {}),
          ('LDMATLoss', {}), ('LargeMarginLoss', {}), ('CenterLoss', {}),
          ('CenterLoss', dict(center_mode='ema'))]


def build_loss(name, kwargs, k=4, c=8):
    from mmseg.registry import MODELS
    import sar_plugin  # noqa: F401  (registers the losses)
    return MODELS.build(dict(type=name, num_classes=k, channels=c,
                             **kwargs)).train()


@pytest.mark.parametrize('name,kwargs', LOSSES)
def test_dense_losses_keep_the_gradient_layout(name, kwargs):
    loss = build_loss(name, kwargs)
    feat = torch.randn(2, 8, 3, 4).contiguous(
        memory_format=torch.channels_last).requires_grad_(True)
    label = torch.randint(4, (2, 3, 4))
    out = loss(feat, label, classifier=torch.nn.Conv2d(8, 4, 1))
    total = sum(out.values()) if isinstance(out, dict) else out
    (grad,) = torch.autograd.grad(total, feat)
    assert grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('name,kwargs', LOSSES)
def test_dense_losses_take_an_empty_batch(name, kwargs):
    loss = build_loss(name, kwargs)
    feat = torch.randn(0, 8, 3, 4, requires_grad=True)
    out = loss(feat, torch.zeros(0, 3, 4, dtype=torch.long),
               classifier=torch.nn.Conv2d(8, 4, 1))
    terms = out.values() if isinstance(out, dict) else [out]
    assert all(bool(torch.isfinite(t)) for t in terms)
    sum(terms).backward()
    assert feat.grad.shape == feat.shape

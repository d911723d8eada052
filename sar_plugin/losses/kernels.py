"""Fused per-pixel kernels of the feature losses, for speed.

Each replaces a chain of eager ops that allocated a fresh ``M x C`` tensor
per op (``M = N H W`` pixels), forward and backward, by one allocation each
way, and works in the features' own ``N x C x H x W`` layout where it can,
so that no transposing copy is made. On the CPU a fresh tensor of that size
costs about as much as the arithmetic on it (its pages are faulted in
anew), and on a GPU every pass over it is bandwidth; ``benchmarks/run.py
loss`` measures the result against ``F.mse_loss``. Each kernel keeps
ignored pixels out of values and gradients exactly (NaN there included)
and is checked against plain eager code and loops in
``tests/test_losses_fast.py``.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .functional import upcast_dtype


def all_finite(x: Tensor) -> Tensor:
    """Scalar bool tensor: is every entry of ``x`` finite? No host sync.

    One read pass (:func:`torch.aminmax`, which propagates NaN) instead of
    :func:`torch.isfinite`'s boolean copy of the whole tensor.
    """
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    low, high = torch.aminmax(x.detach())
    return torch.isfinite(low) & torch.isfinite(high)


def _feature_layout(feat: Tensor) -> Tuple[torch.dtype, torch.memory_format]:
    """What a gradient of ``feat`` must look like: its dtype and memory
    format (channels-last when ``feat`` is, else contiguous)."""
    channels_last = feat.dim() == 4 and not feat.is_contiguous() and \
        feat.is_contiguous(memory_format=torch.channels_last)
    return feat.dtype, (torch.channels_last if channels_last else
                        torch.contiguous_format)


def _empty_grad(layout: Tuple[torch.dtype, torch.memory_format],
                shape: Tuple[int, ...], device: torch.device) -> Tensor:
    """An uninitialised gradient of ``shape`` with a feature's layout."""
    dtype, fmt = layout
    return torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)


class _MaskedRows(torch.autograd.Function):
    """``N x C x H x W`` -> ``M x C`` rows (``M = N H W``, NHWC order) in
    ``dtype``, zero where ``keep`` (``N x H x W``) is False; the gradient is
    masked the same way. One transposing copy each way."""

    @staticmethod
    def forward(ctx, feat: Tensor, keep: Tensor,
                dtype: torch.dtype) -> Tensor:
        n, c, h, w = feat.shape
        keep = keep.reshape(n, h, w)
        rows = torch.empty((n, h, w, c), dtype=dtype, device=feat.device)
        rows.permute(0, 3, 1, 2).copy_(feat)
        rows.masked_fill_(~keep[..., None], 0)
        ctx.save_for_backward(keep)
        ctx.layout = _feature_layout(feat)
        return rows.view(-1, c)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None, None]:
        keep, = ctx.saved_tensors
        n, h, w = keep.shape
        c = grad.shape[1]
        out = _empty_grad(ctx.layout, (n, c, h, w), grad.device)
        out.copy_(grad.reshape(n, h, w, c).permute(0, 3, 1, 2))
        out.masked_fill_(~keep[:, None], 0)
        return out, None, None


def masked_rows(feat: Tensor, keep: Tensor) -> Tensor:
    """Per-pixel features as ``M x C`` rows, zero where ``keep`` is False.

    Args:
        feat (Tensor): ``N x C x H x W`` features (any float dtype).
        keep (Tensor): ``M = N H W`` (or ``N x H x W``) bool.

    Returns:
        Tensor: ``M x C`` (NHWC order, contiguous), in :func:`upcast`'s
        dtype. Whatever ``feat`` holds where ``keep`` is False (NaN
        included) reaches neither the rows nor ``feat``'s gradient.
    """
    return _MaskedRows.apply(feat, keep, upcast_dtype(feat.dtype))


def column_sq_norm(x: Tensor) -> Tensor:
    """``(x * x).sum(0)`` of a ``C x M`` tensor without an ``M x C``
    temporary.

    On the CPU a reduction over the outer dimension is slow and a large
    fresh temporary costs its page faults (measured at ``256 x 65536``:
    ``vector_norm(dim=0)`` 51 ms, ``(x * x).sum(0)`` 29 ms, 256 in-place
    multiply-adds of contiguous rows 3.5 ms), so large inputs accumulate
    their rows one by one there; small ones (up to 4M entries, where the
    temporary is cheap and the loop's per-op cost is not) and other
    devices reduce in one go.
    """
    if x.device.type != 'cpu':
        return torch.linalg.vector_norm(x, dim=0).square_()
    if x.numel() <= 2**22:
        return (x * x).sum(0)
    out = x[0] * x[0]
    for row in x[1:]:
        out.addcmul_(row, row)
    return out


class _MaskedSqDist(torch.autograd.Function):
    """``||f_x - centers[index_x]||^2`` per pixel of ``N x C x H x W``
    features, 0 where ``keep`` is False (see :func:`masked_sq_dist`)."""

    @staticmethod
    def forward(ctx, feat: Tensor, centers: Tensor, index: Tensor,
                keep: Tensor) -> Tensor:
        n, c, h, w = feat.shape
        keep = keep.reshape(n, h, w)
        # the targets as C x M, i.e. an N x C x H x W view whose H x W
        # planes are contiguous like the features': no transposing copy
        diff = torch.gather(centers.t().contiguous(), 1,
                            index.reshape(1, -1).expand(c, -1))
        view = diff.view(c, n, h, w).permute(1, 0, 2, 3)
        torch.sub(feat, view, out=view)
        diff.masked_fill_(~keep.reshape(1, -1), 0)
        ctx.save_for_backward(diff, keep, index)
        ctx.num_centers = centers.shape[0]
        ctx.layout = _feature_layout(feat)
        return column_sq_norm(diff)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor
                 ) -> Tuple[Tensor, Optional[Tensor], None, None]:
        diff, keep, index = ctx.saved_tensors
        n, h, w = keep.shape
        c = diff.shape[0]
        scale = torch.where(keep.reshape(-1), 2 * grad, 0).view(n, 1, h, w)
        out = _empty_grad(ctx.layout, (n, c, h, w), grad.device)
        pixels = diff.view(c, n, h, w).permute(1, 0, 2, 3)
        torch.mul(pixels, scale, out=out)
        g_centers = None
        if ctx.needs_input_grad[1]:  # -sum over each class' pixels
            weighted = out if out.dtype == diff.dtype else pixels * scale
            g_centers = diff.new_zeros(c, ctx.num_centers)
            # (index_add_ with alpha=-1 takes a slow path: 8x, measured)
            for image, columns in zip(weighted.reshape(n, c, h * w),
                                      index.view(n, h * w)):
                g_centers.index_add_(1, columns, image)
            g_centers = -g_centers.t()
        return out, g_centers, None, None


def masked_sq_dist(feat: Tensor, centers: Tensor, index: Tensor,
                   keep: Tensor) -> Tensor:
    """``||f_x - centers[index_x]||^2`` for every pixel ``x``, computed in
    the features' own ``N x C x H x W`` layout.

    Equal to ``(rows - centers[index]).pow(2).sum(1)`` on the masked rows of
    :func:`masked_rows`, but with one ``M x C`` temporary forward (the
    difference, kept for the backward) and one backward (the gradient),
    and no transposing copy. Pixels where ``keep`` is False give 0, and
    their gradient is exactly 0 whatever ``feat`` holds there (NaN
    included); so is their share of the centres' gradient (when
    ``centers`` requires one). Not twice differentiable.

    Args:
        feat (Tensor): ``N x C x H x W`` (any float dtype; the computation
            is in ``centers``' dtype).
        centers (Tensor): ``K x C``, float32 or float64.
        index (Tensor): ``M = N H W`` long in ``[0, K)`` (NHWC order).
        keep (Tensor): ``M`` (or ``N x H x W``) bool.

    Returns:
        Tensor: ``M`` in ``centers``' dtype.
    """
    return _MaskedSqDist.apply(feat, centers, index, keep)


class _PixelAnchorLogits(torch.autograd.Function):
    """``z[n, k, p] = a_k . f[n, :, p]`` (times ``scale / ||f[n, :, p]||``
    when ``normalize``), see :func:`pixel_anchor_logits`.

    Features in the anchors' dtype take one batched product each way; low-
    precision ones are upcast one ``C x HW`` image at a time, never as a
    whole ``N x C x HW`` copy. It saves for the backward only the anchors and the mask, plus, when
    ``normalize``, the features as they came (alive anyway as the network's
    activation), the ``N x K x HW`` output and the ``N x HW`` norms.
    """

    @staticmethod
    def forward(ctx, feat: Tensor, anchors: Tensor, keep: Tensor,
                normalize: bool, scale: float) -> Tensor:
        n, c, h, w = feat.shape
        flat = feat.reshape(n, c, h * w)
        if flat.dtype == anchors.dtype:  # one product, no copy
            z = torch.matmul(anchors, flat)
            sq = column_sq_norm(flat.transpose(0, 1)) if normalize else None
        else:  # upcast one image at a time
            z = anchors.new_empty(n, anchors.shape[0], h * w)
            sq = anchors.new_empty(n, h * w) if normalize else None
            for i in range(n):
                x = flat[i].to(anchors.dtype)
                torch.matmul(anchors, x, out=z[i])
                if normalize:
                    sq[i] = column_sq_norm(x)
        keep = keep.reshape(n, 1, h * w)
        if normalize:
            inv = scale / sq.sqrt().clamp(min=1e-12)
            z.mul_(inv[:, None])
            ctx.save_for_backward(anchors, keep, flat, z, sq, inv)
        else:
            ctx.save_for_backward(anchors, keep)
        ctx.normalize = normalize
        ctx.shape, ctx.layout = feat.shape, _feature_layout(feat)
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None, None, None, None]:
        n, c, h, w = ctx.shape
        out = _empty_grad(ctx.layout, ctx.shape, grad.device)
        if ctx.normalize:
            anchors, keep, flat, z, sq, inv = ctx.saved_tensors
            # d(a.f s/|f|)/df = (s/|f|) a - (a.f s/|f|) f / |f|^2; the norm
            # term is 0 where |f| was clamped
            coef = -(grad * z).sum(1) / sq
            coef = torch.where(sq.sqrt() > 1e-12, coef, 0)
            grad = grad * inv[:, None]
        else:
            anchors, keep = ctx.saved_tensors
        if out.dtype == anchors.dtype and out.is_contiguous():
            # the gradient is the product itself: no per-image temporaries
            g = torch.matmul(anchors.t(), grad, out=out.view(n, c, h * w))
            if ctx.normalize:
                g.addcmul_(flat, coef[:, None])
            g.masked_fill_(~keep, 0)
            return out, None, None, None, None
        for i in range(n):  # low precision or channels-last: per image
            g = torch.matmul(anchors.t(), grad[i])  # C x HW
            if ctx.normalize:
                g.addcmul_(flat[i].to(g.dtype), coef[i][None])
            g.masked_fill_(~keep[i], 0)
            out[i].copy_(g.view(c, h, w))
        return out, None, None, None, None


def pixel_anchor_logits(feat: Tensor, anchors: Tensor, keep: Tensor,
                        normalize: bool = False,
                        scale: float = 1.0) -> Tensor:
    """Per-pixel products with fixed anchors, in the features' own layout.

    ``z[n, k, y, x] = a_k . f[n, :, y, x]``, or with ``normalize``
    ``scale * a_k . f / max(||f||, 1e-12)``, as ``N x K x (H W)`` (the
    layout :func:`torch.nn.functional.cross_entropy` takes), by one batched
    product and no transposing copy of the features. Values at pixels where
    ``keep`` is False are whatever the features give (NaN included): the
    caller must mask them; their gradient is exactly 0. The anchors are
    constants (no gradient). Not twice differentiable.

    Args:
        feat (Tensor): ``N x C x H x W`` (any float dtype).
        anchors (Tensor): ``K x C``, float32 or float64 (the computation's
            dtype).
        keep (Tensor): ``M = N H W`` (or ``N x H x W``) bool.
        normalize (bool): Divide by the feature's norm.
        scale (float): Factor of the normalised products.

    Returns:
        Tensor: ``N x K x (H W)``.
    """
    return _PixelAnchorLogits.apply(feat, anchors.detach(), keep, normalize,
                                    float(scale))


def pixel_nll(logits: Tensor, label: Tensor, valid: Tensor) -> Tensor:
    """``M`` cross-entropies of ``N x K x HW`` logits, exactly 0 at invalid
    pixels (whatever the logits hold there).

    Args:
        logits (Tensor): ``N x K x HW`` (:func:`pixel_anchor_logits`).
        label (Tensor): ``M = N HW`` labels in NHWC order (invalid ones 0).
        valid (Tensor): ``M`` valid mask.
    """
    nll = F.cross_entropy(logits, label.view(logits.shape[0],
                                             logits.shape[2]),
                          reduction='none')
    return torch.where(valid, nll.reshape(-1), 0.0)

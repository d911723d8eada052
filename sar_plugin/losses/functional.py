"""Pure helpers of the feature losses: dtype, classifier access, the
feature rows, distances, the rank-consistent centre update and the
non-finite input warning.

The two autograd functions here exist for speed (``tools/benchmark.py
loss``): each replaces a chain of eager ops that allocated a fresh
``M x C`` tensor per op, forward and backward, by one allocation each way.
On CPU a fresh tensor of that size costs about as much as the arithmetic on
it (the pages are faulted in anew), and on GPU every pass over it is
bandwidth. ``tests/test_losses_fast.py`` checks both against plain eager
code (values and gradients).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..utils.dist import all_reduce_sum


class NonFiniteInputWarning(UserWarning):
    """A training step of an anchor loss saw non-finite features (or
    classifier outputs) and left the loss' state (anchors, centres, EMA,
    gate) unchanged. The message names the loss class."""


def upcast_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, unless ``dtype`` already is float32 or float64."""
    return dtype if dtype in (torch.float32, torch.float64) \
        else torch.float32


def upcast(x: Tensor) -> Tensor:
    """``x`` in float32 unless it already is float32 or float64."""
    return x.to(upcast_dtype(x.dtype))


def all_finite(x: Tensor) -> Tensor:
    """Scalar bool tensor: is every entry of ``x`` finite? No host sync.

    One read pass (:func:`torch.aminmax`, which propagates NaN) instead of
    :func:`torch.isfinite`'s boolean copy of the whole tensor.
    """
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    low, high = torch.aminmax(x.detach())
    return torch.isfinite(low) & torch.isfinite(high)


class _MaskedRows(torch.autograd.Function):
    """``N x C x H x W`` -> ``M x C`` rows (``M = N H W``, NHWC order) in
    ``dtype``, zero where ``keep`` (``N x H x W``) is False; the gradient is
    masked the same way. One transposing copy each way."""

    @staticmethod
    def forward(ctx, feat: Tensor, keep: Tensor,
                dtype: torch.dtype) -> Tensor:
        n, c, h, w = feat.shape
        rows = torch.empty((n, h, w, c), dtype=dtype, device=feat.device)
        rows.permute(0, 3, 1, 2).copy_(feat)
        rows.masked_fill_(~keep[..., None], 0)
        ctx.save_for_backward(keep)
        ctx.feat_dtype = feat.dtype
        ctx.channels_last = feat.is_contiguous(
            memory_format=torch.channels_last) and not feat.is_contiguous()
        return rows.view(-1, c)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None, None]:
        keep, = ctx.saved_tensors
        n, h, w = keep.shape
        c = grad.shape[1]
        fmt = torch.channels_last if ctx.channels_last \
            else torch.contiguous_format
        out = torch.empty((n, c, h, w), dtype=ctx.feat_dtype,
                          device=grad.device, memory_format=fmt)
        out.copy_(grad.reshape(n, h, w, c).permute(0, 3, 1, 2))
        out.masked_fill_(~keep[:, None], 0)
        return out, None, None


def masked_rows(feat: Tensor, keep: Tensor) -> Tensor:
    """Per-pixel features as ``M x C`` rows, zero where ``keep`` is False.

    Args:
        feat (Tensor): ``N x C x H x W`` features (any float dtype).
        keep (Tensor): ``N x H x W`` bool.

    Returns:
        Tensor: ``M x C`` (NHWC order, contiguous), in :func:`upcast`'s
        dtype. Whatever ``feat`` holds where ``keep`` is False (NaN
        included) reaches neither the rows nor ``feat``'s gradient.
    """
    return _MaskedRows.apply(feat, keep, upcast_dtype(feat.dtype))


class _RowSqDist(torch.autograd.Function):
    """``||x_m - centers[index_m]||^2`` per row (see :func:`row_sq_dist`)."""

    @staticmethod
    def forward(ctx, x: Tensor, centers: Tensor, index: Tensor) -> Tensor:
        diff = torch.index_select(centers, 0, index)
        torch.sub(x, diff, out=diff)
        ctx.save_for_backward(diff, index)
        ctx.num_centers = centers.shape[0]
        return torch.einsum('mc,mc->m', diff, diff)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor
                 ) -> Tuple[Optional[Tensor], Optional[Tensor], None]:
        diff, index = ctx.saved_tensors
        g = diff * (2 * grad)[:, None]
        g_centers = None
        if ctx.needs_input_grad[1]:
            g_centers = g.new_zeros(ctx.num_centers, g.shape[1]).index_add_(
                0, index, g, alpha=-1)
        return (g if ctx.needs_input_grad[0] else None), g_centers, None


def row_sq_dist(x: Tensor, centers: Tensor, index: Tensor) -> Tensor:
    """``||x_m - centers[index_m]||^2`` for every row ``m``.

    The same as ``(x - centers[index]).pow(2).sum(1)``, with gradients to
    ``x`` and ``centers``, but with one ``M x C`` temporary (the difference,
    kept for the backward) instead of four, and one more in the backward
    instead of three. Not twice differentiable.

    Args:
        x (Tensor): ``M x C``.
        centers (Tensor): ``K x C``, the same dtype as ``x``.
        index (Tensor): ``M`` long in ``[0, K)``.

    Returns:
        Tensor: ``M``.
    """
    return _RowSqDist.apply(x, centers, index)


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
        # the targets as C x M, i.e. an N x C x H x W view whose H x W
        # planes are contiguous like the features': no transposing copy
        diff = torch.gather(centers.t().contiguous(), 1,
                            index.reshape(1, -1).expand(c, -1))
        view = diff.view(c, n, h, w).permute(1, 0, 2, 3)
        torch.sub(feat, view, out=view)
        diff.masked_fill_(~keep.reshape(1, -1), 0)
        ctx.save_for_backward(diff, keep)
        ctx.feat_dtype = feat.dtype
        ctx.channels_last = feat.is_contiguous(
            memory_format=torch.channels_last) and not feat.is_contiguous()
        return column_sq_norm(diff)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None, None, None]:
        diff, keep = ctx.saved_tensors
        n, h, w = keep.shape
        c = diff.shape[0]
        scale = torch.where(keep.reshape(-1), 2 * grad, 0).view(n, 1, h, w)
        fmt = torch.channels_last if ctx.channels_last \
            else torch.contiguous_format
        out = torch.empty((n, c, h, w), dtype=ctx.feat_dtype,
                          device=grad.device, memory_format=fmt)
        torch.mul(diff.view(c, n, h, w).permute(1, 0, 2, 3), scale, out=out)
        return out, None, None, None


def masked_sq_dist(feat: Tensor, centers: Tensor, index: Tensor,
                   keep: Tensor) -> Tensor:
    """``||f_x - centers[index_x]||^2`` for every pixel ``x``, computed in
    the features' own ``N x C x H x W`` layout.

    Equal to ``(rows - centers[index]).pow(2).sum(1)`` on the masked rows of
    :func:`masked_rows`, but with one ``M x C`` temporary forward (the
    difference, kept for the backward) and one backward (the gradient),
    and no transposing copy. Pixels where ``keep`` is False give 0, and
    their gradient is exactly 0 whatever ``feat`` holds there (NaN
    included). ``centers`` are constants: no gradient reaches them. Not
    twice differentiable.

    Args:
        feat (Tensor): ``N x C x H x W`` (any float dtype; the computation
            is in ``centers``' dtype).
        centers (Tensor): ``K x C``, float32 or float64.
        index (Tensor): ``M = N H W`` long in ``[0, K)`` (NHWC order).
        keep (Tensor): ``N x H x W`` bool.

    Returns:
        Tensor: ``M`` in ``centers``' dtype.
    """
    return _MaskedSqDist.apply(feat, centers.detach(), index, keep)


def classifier_logits(classifier: nn.Module, x: Tensor) -> Tensor:
    """Apply a pixel (1x1 conv) or image (linear) classifier to ``M x C``.

    Args:
        classifier (nn.Module): ``nn.Conv2d`` with a 1x1 kernel or
            ``nn.Linear`` (or anything accepting ``M x C``).
        x (Tensor): ``M x C`` features.

    Returns:
        Tensor: ``M x K`` logits.
    """
    if isinstance(classifier, nn.Conv2d):
        if tuple(classifier.kernel_size) != (1, 1):
            raise ValueError('anchor losses need a 1x1 conv classifier, got '
                             f'kernel_size={classifier.kernel_size}')
        if is_plain_pointwise(classifier):
            # the same product as the module's, without a convolution
            # kernel's fixed cost (a few hundred microseconds per call
            # forward and backward on the CPU, measured)
            return F.linear(x, classifier.weight.flatten(1), classifier.bias)
        return classifier(x[:, :, None, None]).flatten(1)
    return classifier(x)


def is_plain_pointwise(conv: nn.Module) -> bool:
    """Is ``conv`` an unhooked ``nn.Conv2d`` that computes exactly
    ``F.linear`` on a ``1 x 1`` map (1x1 kernel, no padding, one group)?"""
    return (type(conv) is nn.Conv2d and tuple(conv.kernel_size) == (1, 1)
            and tuple(conv.padding) == (0, 0) and conv.groups == 1
            and not conv._forward_hooks and not conv._forward_pre_hooks)


def linear_params(classifier: nn.Module) -> Tuple[Tensor, Tensor]:
    """``(W, b)`` of a linear classifier (``nn.Linear`` or 1x1 conv).

    Returns:
        Tuple[Tensor, Tensor]: ``W`` of shape ``K x C`` and ``b`` of shape
        ``K`` (zeros when the layer has no bias).
    """
    if isinstance(classifier, nn.Conv2d) and \
            tuple(classifier.kernel_size) == (1, 1):
        weight = classifier.weight.flatten(1)
    elif isinstance(classifier, nn.Linear):
        weight = classifier.weight
    else:
        raise TypeError('this loss needs a linear classifier (nn.Linear or a '
                        '1x1 nn.Conv2d, e.g. the decode head\'s conv_seg) '
                        f'passed as `classifier`, got {type(classifier)}')
    bias = classifier.bias
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return weight, bias


def pairwise_distance(x: Tensor, y: Tensor, kind: str = 'sqeuclidean') -> Tensor:
    """Distances between the rows of ``x`` (``M x C``) and ``y`` (``K x C``).

    Args:
        kind (str): ``'sqeuclidean'`` (``||x - y||^2``, computed by
            expansion, never through an ``M x K x C`` tensor),
            ``'euclidean'`` or ``'cosine'`` (``1 - cos(x, y)``).

    Returns:
        Tensor: ``M x K``.
    """
    if kind in ('sqeuclidean', 'euclidean'):
        d = (x.pow(2).sum(1, keepdim=True) - 2 * x @ y.t() +
             y.pow(2).sum(1)[None]).clamp(min=0)
        return d if kind == 'sqeuclidean' else d.clamp(min=1e-12).sqrt()
    if kind == 'cosine':
        return 1 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
    raise ValueError("distance must be 'sqeuclidean', 'euclidean' or "
                     f"'cosine', got {kind!r}")


@torch.no_grad()
def momentum_update_(centers: Tensor, initialized: Tensor, flat: Tensor,
                     label: Tensor, valid: Tensor, momentum: float,
                     ok: Tensor) -> Tensor:
    r"""Partial momentum update of class centres, in place, rank-consistent.

    For every class k present in the batch (on any rank),
    :math:`\mu_k \leftarrow \beta \mu_k + (1 - \beta)\,\bar f_k` with the
    batch mean :math:`\bar f_k` of its valid features (summed over ranks
    before dividing), or :math:`\mu_k = \bar f_k` the first time k is seen.
    Absent classes keep their centre. No host sync.

    Nothing changes, on any rank, when some rank's ``ok`` is False: the
    count of such ranks travels in the spare row of the one all-reduce the
    update needs anyway, and a vetoed update is discarded whatever the sums
    hold.

    Args:
        centers (Tensor): ``K x C`` centres, updated in place.
        initialized (Tensor): ``K`` bool, updated in place.
        flat (Tensor): ``M x C`` features.
        label (Tensor): ``M`` labels (ignored entries may hold anything in
            ``[0, K)``).
        valid (Tensor): ``M`` valid mask.
        momentum (float): :math:`\beta`.
        ok (Tensor): Scalar bool; False vetoes the update. Losses pass
            :meth:`FeatureLoss.state_ok`, which covers the features'
            finiteness.

    Returns:
        Tensor: ``K`` bool, the classes present in the local batch.
    """
    k, c = centers.shape
    row = torch.where(valid, label, k)  # ignored samples go to a spare row
    feats = flat.detach()
    sums = feats.new_zeros(k + 1, c).index_add_(0, row, feats)[:k]
    counts = torch.zeros(k + 1, dtype=torch.float64, device=flat.device)
    counts = counts.index_add_(0, row, valid.to(counts.dtype))
    local = counts[:k] > 0
    counts[k] = (~ok).to(counts.dtype)  # ranks that veto the update
    sums, counts = all_reduce_sum(sums), all_reduce_sum(counts)
    go = counts[k] == 0
    counts = counts[:k]
    mean = (sums / counts.clamp(min=1)[:, None].to(sums)).to(centers.dtype)
    moved = torch.where(initialized[:, None],
                        momentum * centers + (1 - momentum) * mean, mean)
    present = (counts > 0) & go
    centers.copy_(torch.where(present[:, None], moved, centers))
    initialized.logical_or_(present)
    return local

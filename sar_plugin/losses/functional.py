"""Pure helpers of the feature losses: dtype, classifier access,
distances, per-class sums, the rank-consistent centre update and the
non-finite input warning. The fused per-pixel kernels are in
:mod:`.kernels`."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dist import all_reduce_sum


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
def class_sums(feat: Tensor, label: Tensor, valid: Tensor,
               num_classes: int) -> Tuple[Tensor, Tensor]:
    """Per-class sums and counts of the valid features, without a sync.

    Ignored samples are added into a spare class that is dropped, so
    whatever they hold (NaN included) reaches neither result: the sums are
    finite exactly when the valid features are (short of overflow).

    Args:
        feat (Tensor): Unmasked ``N x C x H x W`` features (any float dtype;
            summed in :func:`upcast_dtype`).
        label (Tensor): ``M = N H W`` labels in NHWC order.
        valid (Tensor): ``M`` valid mask.
        num_classes (int): K.

    Returns:
        Tuple[Tensor, Tensor]: ``K x C`` sums and ``K`` float64 counts.
    """
    k = num_classes
    group = torch.where(valid, label, k)  # ignored samples: spare class
    counts = torch.zeros(k + 1, dtype=torch.float64, device=feat.device)
    counts.index_add_(0, group, valid.to(counts.dtype))
    n, c, h, w = feat.shape
    # per image, C x HW columns into C x (K + 1): no transposing copy
    sums = feat.new_zeros(c, k + 1, dtype=upcast_dtype(feat.dtype))
    for image, columns in zip(feat.detach().reshape(n, c, h * w),
                              group.view(n, h * w)):
        sums.index_add_(1, columns, image.to(sums.dtype))
    return sums[:, :k].t(), counts[:k]


@torch.no_grad()
def momentum_update(centers: Tensor, initialized: Tensor, sums: Tensor,
                    counts: Tensor, momentum: float) -> Tuple[Tensor, Tensor]:
    r"""Partial momentum update of class centres, rank-consistent.

    For every class k present in the batch (on any rank),
    :math:`\mu_k \leftarrow \beta \mu_k + (1 - \beta)\,\bar f_k` with the
    batch mean :math:`\bar f_k` of its valid features (summed over ranks
    before dividing), or :math:`\mu_k = \bar f_k` the first time k is seen.
    Absent classes keep their centre. No host sync; nothing is written.

    Args:
        centers (Tensor): ``K x C`` centres.
        initialized (Tensor): ``K`` bool.
        sums (Tensor): ``K x C`` per-class sums of the valid features
            (:func:`class_sums`).
        counts (Tensor): ``K`` float64 per-class counts.
        momentum (float): :math:`\beta`.

    Returns:
        Tuple[Tensor, Tensor]: The new centres and ``initialized``.
    """
    sums, counts = all_reduce_sum(sums.contiguous()), all_reduce_sum(counts)
    mean = (sums / counts.clamp(min=1)[:, None].to(sums)).to(centers.dtype)
    moved = torch.where(initialized[:, None],
                        momentum * centers + (1 - momentum) * mean, mean)
    present = counts > 0
    return (torch.where(present[:, None], moved, centers),
            initialized | present)

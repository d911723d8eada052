"""Large-margin discriminative loss.

Nguyen et al., "Large Margin Discriminative Loss for Classification",
arXiv:2405.18499, 2024.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FeatureLoss, Step
from .checks import check_choice, check_number
from .functional import (class_sums, linear_params, momentum_update,
                         upcast_dtype)
from .kernels import masked_sq_dist


class LargeMarginLoss(FeatureLoss):
    r"""Compact classes and keep their centres away from the boundaries.

    Class centres :math:`\mu_k` (buffer ``centers``, ``K x C``, with
    ``initialized``) follow the paper's *partial momentum* update in
    training mode: only the classes in the batch move,
    :math:`\mu_k \leftarrow \beta\mu_k + (1-\beta)\,\mathrm{mean}(f | y=k)`
    (:math:`\mu_k = \mathrm{mean}` at first sight), detached, averaged over
    ranks (:func:`~sar_plugin.losses.functional.momentum_update`). Then, with
    the linear classifier :math:`(W, b)` of the head,

    .. math::
        L_c = \mathrm{mean}_{valid\ x}\,\tfrac1C\|f - \mu_y\|^2, \qquad
        d_{kj} = \frac{(w_k - w_j)\cdot\mu_k + b_k - b_j}
                      {\sqrt C\,\|w_k - w_j\|},

        L_m = \mathrm{mean}_{k \in \text{batch}}\
              \mathrm{relu}\big(m - \min_{j \ne k} d_{kj}\big),

    :math:`\sqrt C\,d_{kj}` being the signed distance of :math:`\mu_k` to
    the boundary between classes k and j (positive on k's side). Distances
    are in per-channel (RMS) units, this project's choice
    (``channel_reduction='mean'``): features with the same per-channel
    statistics give the same :math:`L_c` and :math:`d_{kj}` at C = 64 and
    C = 512, so ``loss_weight`` and ``margin`` mean the same for every
    width. ``channel_reduction='sum'`` is the paper's form (no
    :math:`1/C`, no :math:`1/\sqrt C`): there :math:`L_c` grows with C.
    Returned:
    ``{loss_name}_compact = loss_weight * lambda_c * L_c`` and
    ``{loss_name}_margin = loss_weight * lambda_m * L_m``.

    Choices where the paper is open:

    - :math:`L_c` uses the centres *after* this step's update (so a class
      seen for the first time is compact around its own batch mean), and
      ``class_weight`` applies to :math:`L_c` only.
    - :math:`\mu` is detached, so :math:`L_m` trains the classifier only
      and :math:`L_c` the features only; the classifier's CE (in the head)
      supplies the rest.
    - :math:`L_m` averages over the classes with a valid sample in the
      local batch (and an initialised centre), a zero with a graph if none.
    - Computed in float32 (or float64) with autocast disabled; the
      denominator is clamped at ``1e-6`` for identical weight rows.

    Args:
        num_classes (int, optional): K (>= 2).
        channels (int, optional): C.
        margin (float): m.
        momentum (float): :math:`\beta` in [0, 1).
        lambda_c (float): Weight of :math:`L_c`.
        lambda_m (float): Weight of :math:`L_m`.
        channel_reduction (str): ``'mean'`` (per-channel units) or
            ``'sum'`` (the paper's).
        loss_weight (float): Multiplies both terms. The default, 0.3,
            was chosen on the demo's validation split (docs/losses.md,
            "Choosing a weight").
        ignore_index (int): Ignored label.
        loss_name (str): Prefix of the returned terms.
        **kwargs: ``class_weight``, ``reduction``, ``validate_labels`` of
            :class:`FeatureLoss`.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 channels: Optional[int] = None,
                 margin: float = 1.0,
                 momentum: float = 0.9,
                 lambda_c: float = 1.0,
                 lambda_m: float = 1.0,
                 channel_reduction: str = 'mean',
                 loss_weight: float = 0.3,
                 ignore_index: int = 255,
                 loss_name: str = 'loss_large_margin',
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, channels=channels,
                         loss_weight=loss_weight, ignore_index=ignore_index,
                         loss_name=loss_name, **kwargs)
        cls = type(self).__name__
        if self.num_classes < 2:
            raise ValueError(f'{cls}: `num_classes` must be >= 2, got '
                             f'{self.num_classes}')
        self.margin = check_number(cls, 'margin', margin, '>= 0')
        self.momentum = check_number(cls, 'momentum', momentum, '[0, 1)')
        self.lambda_c = check_number(cls, 'lambda_c', lambda_c, '>= 0')
        self.lambda_m = check_number(cls, 'lambda_m', lambda_m, '>= 0')
        self.channel_reduction = check_choice(
            cls, 'channel_reduction', channel_reduction, ('mean', 'sum'))
        k, c = self.num_classes, self.channels
        self.register_buffer('centers', torch.zeros(k, c))
        self.register_buffer('initialized', torch.zeros(k, dtype=torch.bool))

    def boundary_distance(self, weight: Tensor, bias: Tensor,
                          centers: Optional[Tensor] = None) -> Tensor:
        """``K x K`` signed distances ``d_kj`` of the centres (``centers``,
        by default the buffer), +inf at j=k; divided by ``sqrt(C)`` with
        ``channel_reduction='mean'``.

        From ``K x K`` products only (``G = mu W^T`` and the Gram matrix
        ``W W^T``), never a ``K x K x C`` difference tensor: ImageNet's
        ``K = 1000``, ``C = 2048`` would need 8 GB.
        """
        mu = (self.centers if centers is None else centers).to(weight.dtype)
        g = mu @ weight.t()  # g[k, j] = w_j . mu_k
        num = g.diagonal()[:, None] - g + bias[:, None] - bias[None, :]
        gram = weight @ weight.t()
        sq = gram.diagonal()
        den = sq[:, None] + sq[None, :] - 2 * gram  # ||w_k - w_j||^2
        eye = torch.eye(len(mu), dtype=torch.bool, device=mu.device)
        den = torch.where(eye, 1.0, den).clamp(min=1e-12)
        if self.channel_reduction == 'mean':
            den = den * self.channels  # sqrt(C) ||w_k - w_j||
        return torch.where(eye, float('inf'), num / den.sqrt())

    def compute(self, feat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module] = None) -> Step:
        """Both terms, with the centres as this step's update (training)
        leaves them.

        Args:
            classifier (nn.Module): The head's linear classifier
                (``conv_seg`` or an ``nn.Linear``).

        Returns:
            Step: ``{loss_name}_compact`` and ``{loss_name}_margin``, and
            the new centres.
        """
        if classifier is None:
            raise ValueError(
                'LargeMarginLoss needs the head\'s linear classifier: call it '
                'as loss(feat, label, classifier=head.conv_seg) (nn.Linear or '
                'a 1x1 nn.Conv2d)')
        weight, bias = linear_params(classifier)
        if tuple(weight.shape) != (self.num_classes, self.channels):
            raise ValueError(
                f'LargeMarginLoss: the classifier maps {weight.shape[1]} '
                f'channels to {weight.shape[0]} classes, expected '
                f'{self.channels} -> num_classes={self.num_classes}')
        sums, counts = class_sums(feat, label, valid, self.num_classes)
        centers, initialized = self.centers, self.initialized
        state = {}
        if self.training:
            centers, initialized = momentum_update(
                centers, initialized, sums, counts, self.momentum)
            state = dict(centers=centers, initialized=initialized)
        present = (counts > 0) & initialized
        centers = centers.to(upcast_dtype(feat.dtype))
        compact = masked_sq_dist(feat, centers, label, valid)
        if self.channel_reduction == 'mean':
            compact = compact / self.channels
        dist = self.boundary_distance(weight.to(centers.dtype),
                                      bias.to(centers.dtype), centers)
        hinge = torch.where(present, F.relu(self.margin - dist.min(1).values),
                            0.0)
        terms = {
            f'{self.loss_name}_compact':
            self.lambda_c * self.reduce(compact, label, valid),
            f'{self.loss_name}_margin':
            self.lambda_m * hinge.sum() / present.sum().clamp(min=1),
        }
        return Step(terms, state, checked=[('features', sums)])

"""Anchor-based Nearest Class Mean loss (ANCM).

Hao et al., "Anchor-based Nearest Class Mean Loss for Convolutional Neural
Networks", arXiv:1804.08087, 2018.
"""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .base import FeatureLoss, Step
from .checks import check_choice, check_number, check_seed
from .functional import upcast_dtype
from .kernels import pixel_anchor_logits, pixel_nll


class ANCMLoss(FeatureLoss):
    r"""Softmax over the distances of a feature to K fixed class anchors.

    With fixed anchors :math:`a_k` (buffer ``anchors``, ``K x C``):

    .. math::
        p(k | x) = \mathrm{softmax}_k\big(-\tfrac12 \|f - a_k\|^2\big)
        \quad (\text{distance='euclidean'}), \qquad
        p(k | x) = \mathrm{softmax}_k\big(-s\,(1 - \cos(f, a_k))\big)
        \quad (\text{distance='cosine'}),

    and :math:`L = \mathrm{mean}_{valid\ x}\,(-\log p(y | x))` (weighted by
    ``class_weight`` if given, see :meth:`FeatureLoss.reduce`). The scale
    :math:`s` of the cosine variant (``scale``, default 16) is this
    project's choice, not the paper's.

    Width (``channel_reduction``, euclidean only; the cosine is scale-free
    as it is): with ``'mean'`` (this project's default) the squared
    distance is a mean over the C channels, :math:`-\tfrac{1}{2C}\|f -
    a_k\|^2`, and the anchors have norm ``anchor_scale`` :math:`\sqrt C`
    (per-channel RMS ``anchor_scale``), so features with the same
    per-channel statistics give the same loss at C = 64 and C = 512.
    ``'sum'`` is the paper's form, with anchors of norm ``anchor_scale``.

    Choices where the paper is open:

    - Anchors: the default ``'simplex'`` (regular simplex, pairwise cosine
      ``-1/(K-1)``, needs ``C >= K-1``) is the maximal separation of K
      points for any K; ``'onehot'`` (needs ``C >= K``) is the axis-aligned
      alternative, with pairwise cosine 0.
    - The softmax is invariant to a per-sample shift, so the logits are
      computed as :math:`f \cdot a_k - \|a_k\|^2/2` (euclidean) and
      :math:`s (f \cdot \hat a_k) / \|f\|` (cosine). They give exactly the
      loss above but avoid the cancellation of
      :math:`\|f\|^2 - 2 f\cdot a + \|a\|^2`, never build an
      ``M x K x C`` tensor nor a normalised ``M x C`` copy of the features.
    - Computed in float32 (or float64) with autocast disabled.

    Args:
        num_classes (int, optional): K.
        channels (int, optional): C.
        anchor_init (str): ``'simplex'`` (needs ``C >= K - 1``),
            ``'onehot'`` (``C >= K``) or ``'hypersphere'`` (random unit
            anchors, for features narrower than the class count, e.g.
            ResNet-32's 64 channels for CIFAR-100).
        anchor_seed (int, optional): Seed of the anchors (the simplex'
            random rotation), independent of the run's
            ``randomness.seed``; ``None`` uses the run's seed (see
            :meth:`FeatureLoss.register_anchors`).
        anchor_scale (float): Norm of every anchor (``'sum'``), its
            per-channel RMS (``'mean'``, i.e. norm ``anchor_scale *
            sqrt(C)``).
        distance (str): ``'euclidean'`` or ``'cosine'``.
        scale (float): ``s`` of the cosine variant.
        channel_reduction (str): ``'mean'`` or ``'sum'`` over the channels
            of the euclidean distance (see above).
        loss_weight (float): Multiplies the loss. The default, 0.3,
            was chosen on the demo's validation split (docs/losses.md,
            "Choosing a weight").
        ignore_index (int): Ignored label.
        loss_name (str): Name of the term.
        **kwargs: ``class_weight``, ``reduction``, ``validate_labels`` of
            :class:`FeatureLoss`.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 channels: Optional[int] = None,
                 anchor_init: str = 'simplex',
                 anchor_seed: Optional[int] = 0,
                 anchor_scale: float = 1.0,
                 distance: str = 'euclidean',
                 scale: float = 16.0,
                 channel_reduction: str = 'mean',
                 loss_weight: float = 0.3,
                 ignore_index: int = 255,
                 loss_name: str = 'loss_ancm',
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, channels=channels,
                         loss_weight=loss_weight, ignore_index=ignore_index,
                         loss_name=loss_name, **kwargs)
        cls = type(self).__name__
        anchor_init = check_choice(cls, 'anchor_init', anchor_init,
                                   ('simplex', 'onehot', 'hypersphere'))
        anchor_seed = check_seed(cls, 'anchor_seed', anchor_seed)
        anchor_scale = check_number(cls, 'anchor_scale', anchor_scale, '> 0')
        self.distance = check_choice(cls, 'distance', distance,
                                     ('euclidean', 'cosine'))
        self.scale = check_number(cls, 'scale', scale, '> 0')
        self.channel_reduction = check_choice(
            cls, 'channel_reduction', channel_reduction, ('mean', 'sum'))
        if self.distance == 'euclidean' and channel_reduction == 'mean':
            anchor_scale = anchor_scale * self.channels**0.5
        self.register_anchors(anchor_init, anchor_seed, anchor_scale)

    def logits(self, feat: Tensor, valid: Tensor) -> Tensor:
        """``N x K x HW`` logits of unmasked ``N x C x H x W`` features
        (shifted per pixel), by one product in the features' layout."""
        anchors = self.anchors.to(upcast_dtype(feat.dtype))
        if self.distance == 'euclidean':
            logits = pixel_anchor_logits(feat, anchors, valid) - \
                anchors.pow(2).sum(1)[:, None] / 2
            if self.channel_reduction == 'mean':
                logits = logits / self.channels
            return logits
        return pixel_anchor_logits(feat, F.normalize(anchors, dim=1), valid,
                                   normalize=True, scale=self.scale)

    def compute(self, feat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module] = None) -> Step:
        """Mean NLL of the anchor softmax (``classifier`` is not used)."""
        nll = pixel_nll(self.logits(feat, valid), label, valid)
        return Step(self.reduce(nll, label, valid),
                    checked=[('features', nll)])

"""Center loss.

Wen et al., "A Discriminative Feature Learning Approach for Deep Face
Recognition", ECCV 2016.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from ..anchors import build_anchors
from .base import FeatureLoss, Step
from .checks import check_choice, check_number, check_seed
from .functional import class_sums, momentum_update, upcast_dtype
from .kernels import masked_sq_dist


class CenterLoss(FeatureLoss):
    r"""Pull every feature to its class centre.

    .. math::
        L = \mathrm{mean}_{valid\ x}\ \tfrac{1}{2C} \|f - c_y\|^2

    (weighted by ``class_weight`` if given): the squared distance is a
    mean over the C channels (``channel_reduction='mean'``, this project's
    choice), so one ``loss_weight`` means the same at C = 64 and C = 512;
    ``channel_reduction='sum'`` is the paper's :math:`\tfrac12 \|f -
    c_y\|^2`, C times larger. Two ways to move the centres:

    - ``center_mode='learned'``: ``centers`` is an ``nn.Parameter`` trained
      by the optimiser with the network (the gradient
      :math:`c_y - f` of the loss). Initialised, by choice, with the seeded
      ``'gaussian'`` anchors (``center_init``, ``center_seed``), because
      with all-zero centres every class starts at the same point and the
      first steps pull all features together; ``center_init='zeros'`` is
      available. Note that the optimiser's weight decay applies to it
      unless the config excludes it.
    - ``center_mode='ema'``: buffer ``centers`` (plus ``initialized``) moved
      in training mode by the partial momentum update of
      :func:`~.functional.momentum_update`, :math:`c_k \leftarrow \beta c_k + (1 -
      \beta)\,\bar f_k` with :math:`\beta` = ``momentum``, for the
      classes in the batch, :math:`c_k = \bar f_k` at first sight, before
      the loss is computed. This is Wen et al.'s update :math:`c_k
      \leftarrow c_k - \alpha \Delta c_k`, :math:`\Delta c_k = n_k (c_k -
      \bar f_k) / (1 + n_k)`, without the :math:`n_k / (1 + n_k)` damping:
      ``momentum`` is :math:`1 - \alpha`, :math:`\alpha` being the paper's
      learning rate of the centres (the default 0.5 is :math:`\alpha =
      0.5`). Gradients reach the features only.

    Args:
        num_classes (int, optional): K.
        channels (int, optional): C.
        center_mode (str): ``'learned'`` or ``'ema'``.
        momentum (float): :math:`\beta = 1 - \alpha` of ``'ema'``, in
            [0, 1).
        center_init (str): ``'gaussian'`` or ``'zeros'`` (``'learned'``).
        center_seed (int): Seed of the gaussian initialisation.
        channel_reduction (str): ``'mean'`` (scale-free) or ``'sum'``
            (the paper's) over the channels of the squared distance.
        loss_weight (float): Multiplies the loss. The default, 0.03,
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
                 center_mode: str = 'learned',
                 momentum: float = 0.5,
                 center_init: str = 'gaussian',
                 center_seed: int = 0,
                 channel_reduction: str = 'mean',
                 loss_weight: float = 0.03,
                 ignore_index: int = 255,
                 loss_name: str = 'loss_center',
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, channels=channels,
                         loss_weight=loss_weight, ignore_index=ignore_index,
                         loss_name=loss_name, **kwargs)
        cls = type(self).__name__
        self.center_mode = center_mode = check_choice(
            cls, 'center_mode', center_mode, ('learned', 'ema'))
        self.momentum = check_number(cls, 'momentum', momentum, '[0, 1)')
        center_init = check_choice(cls, 'center_init', center_init,
                                   ('gaussian', 'zeros'))
        center_seed = check_seed(cls, 'center_seed', center_seed,
                                 allow_none=False)
        self.channel_reduction = check_choice(
            cls, 'channel_reduction', channel_reduction, ('mean', 'sum'))
        k, c = self.num_classes, self.channels
        if center_mode == 'learned':
            init = build_anchors('gaussian', k, c, center_seed) \
                if center_init == 'gaussian' else torch.zeros(k, c)
            self.centers = nn.Parameter(init)
        else:
            self.register_buffer('centers', torch.zeros(k, c))
            self.register_buffer('initialized',
                                 torch.zeros(k, dtype=torch.bool))

    def compute(self, feat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module] = None) -> Step:
        """The mean of ``||f - c_y||^2 / 2`` (over C with ``'mean'``) with
        the centres as this
        step's ``'ema'`` update leaves them (``classifier`` is not used)."""
        centers = self.centers
        state = {}
        if self.center_mode == 'ema' and self.training:
            sums, counts = class_sums(feat, label, valid, self.num_classes)
            centers, initialized = momentum_update(
                centers, self.initialized, sums, counts, self.momentum)
            state = dict(centers=centers, initialized=initialized)
        dist = masked_sq_dist(feat, centers.to(upcast_dtype(feat.dtype)),
                              label, valid)
        if self.channel_reduction == 'mean':
            dist = dist / self.channels
        # the sums tell the features' finiteness apart from an overflow of
        # their squared distances (the loss' own check)
        checked = [('features', sums)] if state else \
            [('features (or their squared distances)', dist)]
        return Step(self.reduce(dist / 2, label, valid), state, checked)

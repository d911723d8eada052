"""The feature losses: plain ``nn.Module`` objects that need torch alone.

With MMSeg installed, :mod:`sar_plugin.registry` registers them in MMSeg's
``MODELS`` (the one adapter), and this package also gives what only MMSeg
code uses: the heads' loss builder and the class-weighted
``CrossEntropyLoss`` fix.
"""
from .._stack import mmseg_available
from .ancm import ANCMLoss
from .base import FeatureLoss, Step
from .center import CenterLoss
from .cls_cross_entropy import ClsCrossEntropyLoss, class_balanced_weights
from .functional import (NonFiniteInputWarning, classifier_logits,
                         linear_params, momentum_update, pairwise_distance,
                         upcast)
from .hal import HALLoss
from .large_margin import LargeMarginLoss
from .ldmat import LDMATLoss, balanced_quota
from .sar import AnchorProjector, SARLoss

#: The feature losses, as the registry adapter registers them.
FEATURE_LOSSES = (SARLoss, ANCMLoss, HALLoss, LDMATLoss, LargeMarginLoss,
                  CenterLoss)

__all__ = [
    'FeatureLoss', 'Step', 'NonFiniteInputWarning', 'classifier_logits',
    'linear_params', 'pairwise_distance', 'upcast', 'momentum_update',
    'balanced_quota', 'AnchorProjector', 'SARLoss', 'ANCMLoss', 'HALLoss',
    'LDMATLoss', 'LargeMarginLoss', 'CenterLoss', 'FEATURE_LOSSES',
    'ClsCrossEntropyLoss', 'class_balanced_weights'
]

if mmseg_available():
    from .builder import (add_anchor_terms, build_anchor_losses,  # noqa
                          fill_loss_cfg)
    from .seg_cross_entropy import CrossEntropyLoss  # noqa
    __all__ += ['build_anchor_losses', 'add_anchor_terms', 'fill_loss_cfg',
                'CrossEntropyLoss']

from .ancm import ANCMLoss
from .base import FeatureLoss
from .center import CenterLoss
from .cls_cross_entropy import ClsCrossEntropyLoss, class_balanced_weights
from .functional import (NonFiniteInputWarning, classifier_logits,
                         linear_params, momentum_update_, pairwise_distance,
                         upcast)
from .hal import HALLoss
from .large_margin import LargeMarginLoss
from .ldmat import LDMATLoss, balanced_quota
from .builder import add_anchor_terms, build_anchor_losses, fill_loss_cfg
from .sar import AnchorProjector, SARLoss
from .seg_cross_entropy import CrossEntropyLoss

__all__ = [
    'FeatureLoss', 'NonFiniteInputWarning', 'classifier_logits',
    'linear_params', 'pairwise_distance', 'upcast', 'momentum_update_',
    'balanced_quota', 'AnchorProjector', 'SARLoss', 'ANCMLoss', 'HALLoss',
    'LDMATLoss', 'LargeMarginLoss', 'CenterLoss', 'build_anchor_losses',
    'add_anchor_terms', 'fill_loss_cfg', 'ClsCrossEntropyLoss',
    'class_balanced_weights', 'CrossEntropyLoss'
]

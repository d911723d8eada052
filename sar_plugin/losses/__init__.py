from .base import (AnchorLoss, classifier_logits, linear_params,
                   pairwise_distance, upcast)
from .sar import AnchorProjector, SARLoss

__all__ = [
    'AnchorLoss', 'classifier_logits', 'linear_params', 'pairwise_distance',
    'upcast',
    'AnchorProjector', 'SARLoss'
]

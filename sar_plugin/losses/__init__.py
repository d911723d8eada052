from .base import AnchorLoss, classifier_logits, linear_params, pairwise_distance
from .sar import AnchorProjector, SARLoss

__all__ = [
    'AnchorLoss', 'classifier_logits', 'linear_params', 'pairwise_distance',
    'AnchorProjector', 'SARLoss'
]

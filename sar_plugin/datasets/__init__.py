from .camvid import CamVidDataset
from .synthetic import (SyntheticLongTailDataset, class_shares,
                        generate_synthetic_longtail, make_sample)

__all__ = [
    'CamVidDataset',     'SyntheticLongTailDataset', 'class_shares', 'generate_synthetic_longtail',
    'make_sample'
]

from .camvid import CamVidDataset
from .checks import (ADE20KDataset, CityscapesDataset, NonEmptySplitMixin,
                     check_label_map)
from .synthetic import (SyntheticLongTailDataset, class_shares,
                        generate_synthetic_longtail, make_sample)
from .transforms import LoadAnnotations

__all__ = [
    'CamVidDataset', 'SyntheticLongTailDataset', 'class_shares',
    'generate_synthetic_longtail', 'make_sample', 'NonEmptySplitMixin',
    'check_label_map', 'CityscapesDataset', 'ADE20KDataset', 'LoadAnnotations'
]

from .synthetic import (SyntheticLongTailDataset, class_shares,
                        generate_synthetic_longtail, make_sample)

__all__ = [
    'SyntheticLongTailDataset', 'class_shares', 'generate_synthetic_longtail',
    'make_sample'
]

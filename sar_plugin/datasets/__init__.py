"""Data sets and transforms: CamVid, the synthetic long-tailed segmentation
set, checking Cityscapes/ADE20K (in sar_plugin's scope), CIFAR-10/100(-LT),
image lists (ImageNet-LT) and the synthetic CIFAR look-alike."""
from .camvid import CamVidDataset
from .checks import (ADE20KDataset, CityscapesDataset, NonEmptySplitMixin,
                     check_label_map)
from .cifar import CIFAR10, CIFAR100, longtail_counts, longtail_indices
from .image_list import ImageListDataset
from .synthetic import (SyntheticLongTailDataset, class_shares,
                        generate_synthetic_longtail, make_sample)
from .synthetic_cifar import SyntheticCIFAR10, generate_cifar_archive
from .transforms import (LoadAnnotations, PackClsInputs, RandomPadCrop,
                         RandomResizedCrop)

__all__ = [
    'CamVidDataset', 'SyntheticLongTailDataset', 'class_shares',
    'generate_synthetic_longtail', 'make_sample', 'NonEmptySplitMixin',
    'check_label_map', 'CityscapesDataset', 'ADE20KDataset',
    'LoadAnnotations', 'CIFAR10', 'CIFAR100', 'ImageListDataset',
    'longtail_counts', 'longtail_indices', 'SyntheticCIFAR10',
    'generate_cifar_archive', 'PackClsInputs', 'RandomPadCrop',
    'RandomResizedCrop'
]

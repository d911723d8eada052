"""Image classification with the same anchor losses: data samples,
transforms, CIFAR / CIFAR-LT / image-list data sets (registered in the MMSeg
registries on import)."""
from .datasets import (CIFAR10, CIFAR100, ImageListDataset, longtail_counts,
                       longtail_indices)
from .structures import ClsDataSample
from .synthetic import SyntheticCIFAR10, generate_cifar_archive
from .transforms import PackClsInputs, RandomPadCrop

__all__ = [
    'ClsDataSample', 'PackClsInputs', 'RandomPadCrop', 'CIFAR10', 'CIFAR100',
    'ImageListDataset', 'longtail_counts', 'longtail_indices',
    'SyntheticCIFAR10', 'generate_cifar_archive'
]

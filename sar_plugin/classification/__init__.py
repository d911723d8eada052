"""Image classification with the same anchor losses: a classifier and head,
data samples, transforms, CIFAR / CIFAR-LT / image-list data sets
(registered in the MMSeg registries on import). The metric is
:class:`sar_plugin.evaluation.LongTailAccuracy`."""
from .classifier import ImageClassifier
from .cross_entropy import ClsCrossEntropyLoss, class_balanced_weights
from .datasets import (CIFAR10, CIFAR100, ImageListDataset, longtail_counts,
                       longtail_indices)
from .head import AnchorClsHead
from .resnet_cifar import ResNetCifar
from .structures import ClsDataSample
from .synthetic import SyntheticCIFAR10, generate_cifar_archive
from .transforms import PackClsInputs, RandomPadCrop, RandomResizedCrop

__all__ = [
    'ImageClassifier', 'AnchorClsHead', 'ResNetCifar', 'ClsCrossEntropyLoss',
    'class_balanced_weights', 'ClsDataSample', 'PackClsInputs',
    'RandomPadCrop', 'RandomResizedCrop', 'CIFAR10', 'CIFAR100', 'ImageListDataset',
    'longtail_counts', 'longtail_indices', 'SyntheticCIFAR10',
    'generate_cifar_archive'
]

"""Image classification with the same anchor losses: the classifier, the
CIFAR ResNet backbone and the class-weighted cross-entropy (registered in the
MMSeg registries on import). The head is
:class:`sar_plugin.heads.AnchorClsHead`, the data sets and transforms are in
:mod:`sar_plugin.datasets`, the sample type in :mod:`sar_plugin.structures`
and the metric is :class:`sar_plugin.evaluation.LongTailAccuracy`."""
from .classifier import ImageClassifier
from .cross_entropy import ClsCrossEntropyLoss, class_balanced_weights
from .resnet_cifar import ResNetCifar

__all__ = [
    'ImageClassifier', 'ResNetCifar', 'ClsCrossEntropyLoss',
    'class_balanced_weights'
]

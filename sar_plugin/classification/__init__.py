"""Image classification with the same anchor losses: the classifier and the
CIFAR ResNet backbone (registered in the MMSeg registries on import). The
head is :class:`sar_plugin.heads.AnchorClsHead`, the loss
:class:`sar_plugin.losses.ClsCrossEntropyLoss`, the data sets and
transforms are in :mod:`sar_plugin.datasets`, the sample type in
:mod:`sar_plugin.structures` and the metric is
:class:`sar_plugin.evaluation.LongTailAccuracy`."""
from .classifier import ImageClassifier
from .resnet_cifar import ResNetCifar

__all__ = ['ImageClassifier', 'ResNetCifar']

# Balanced CIFAR-10, ResNet-32, plain cross-entropy, 200 epochs.
_base_ = [
    '../../_base_/cls_runtime.py',
    '../../_base_/models/resnet32_cifar.py',
    '../../_base_/datasets/cifar10.py',
    '../../_base_/schedules/cifar_200e.py',
]
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    head=dict(num_classes=10))

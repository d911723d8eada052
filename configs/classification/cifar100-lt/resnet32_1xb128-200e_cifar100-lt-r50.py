# CIFAR-100-LT, imbalance ratio 50 (the LDAM-DRW profile
# n_i = int(500 * 50 ** (-i / 99)): 500 ... 10 training images per class;
# the test set stays balanced), ResNet-32, plain cross-entropy, 200 epochs.
_base_ = [
    '../../_base_/cls_runtime.py',
    '../../_base_/models/resnet32_cifar.py',
    '../../_base_/datasets/cifar100.py',
    '../../_base_/schedules/cifar_200e.py',
]
imbalance_ratio = 50
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    head=dict(num_classes=100))
train_dataloader = dict(dataset=dict(imbalance_ratio=imbalance_ratio))
# the test split stays balanced; with the ratio it knows the training counts
# (train_class_counts) that LongTailAccuracy makes many/medium/few from
val_dataloader = dict(dataset=dict(imbalance_ratio=imbalance_ratio))
test_dataloader = val_dataloader

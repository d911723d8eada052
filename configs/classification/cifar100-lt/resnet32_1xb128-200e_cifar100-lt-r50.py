# CIFAR-100-LT, imbalance ratio 50 (500 ... 10 training images per class):
# the ratio-100 baseline with another ratio on both splits.
_base_ = './resnet32_1xb128-200e_cifar100-lt-r100.py'
imbalance_ratio = 50
train_dataloader = dict(dataset=dict(imbalance_ratio=imbalance_ratio))
val_dataloader = dict(dataset=dict(imbalance_ratio=imbalance_ratio))
test_dataloader = val_dataloader

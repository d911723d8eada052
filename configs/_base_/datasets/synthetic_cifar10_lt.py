# A CIFAR-10 look-alike that the project generates (sar_plugin's
# SyntheticCIFAR10: oriented stripe textures, 10 classes, written on first
# use as an official `cifar-10-batches-py` archive under `data_root` and read
# back by the real CIFAR10 reader), long-tailed with ratio 100 like
# CIFAR-10-LT: 500, 299, 178, 106, 63, 37, 22, 13, 7, 5 training images per
# class; 50 test images per class.
_base_ = ['./cifar10.py']
data_root = 'data/synthetic_cifar10'
synthetic = dict(num_train_per_class=500, num_test_per_class=50, seed=0)
# set on the test split too: it stays balanced but then knows the training
# counts (train_class_counts), which the metric buckets by
imbalance_ratio = 100
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(
        type='SyntheticCIFAR10',
        data_root=data_root,
        imbalance_ratio=imbalance_ratio,
        **synthetic))
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(
        type='SyntheticCIFAR10',
        data_root=data_root,
        imbalance_ratio=imbalance_ratio,
        **synthetic))
test_dataloader = val_dataloader

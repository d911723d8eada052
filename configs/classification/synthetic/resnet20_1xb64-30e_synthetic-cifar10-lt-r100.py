# CPU-sized classification: ResNet-20 with plain cross-entropy on the
# generated long-tailed CIFAR-10 look-alike (ratio 100), 30 short epochs.
# Trains and reports top-1 and many/medium/few accuracy in minutes on a CPU:
#   python tools/train.py configs/classification/synthetic/<this file>
_base_ = [
    '../../_base_/cls_runtime.py',
    '../../_base_/models/resnet32_cifar.py',
    '../../_base_/datasets/synthetic_cifar10_lt.py',
    '../../_base_/schedules/cifar_200e.py',
]
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(depth=20),
    head=dict(num_classes=10))
max_epochs = 30
# the CIFAR optimiser (SGD 0.1, wd 2e-4), shortened: 2 warm-up epochs, x0.1
# at 24 and 28
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[24, 28], gamma=0.1),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=10, max_keep_ckpts=1))

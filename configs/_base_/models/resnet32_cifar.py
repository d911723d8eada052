# ResNet-32 for 32x32 images (He et al. 2016, option-A shortcuts, 0.46M
# parameters; LDAM-DRW's `resnet32`), global average pooling and a linear
# AnchorClsHead. `num_classes` and the data preprocessor come from the
# leaf config.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNetCifar', depth=32, shortcut='A', norm_cfg=norm_cfg),
    head=dict(
        type='AnchorClsHead',
        num_classes=100,
        in_channels=64,
        loss_cls=dict(type='ClsCrossEntropyLoss')))

# ResNet-50 (torchvision layout: MMSeg's `ResNet`, pytorch style, no deep
# stem), global average pooling and a linear AnchorClsHead. SyncBN for
# multi-GPU training; tools/train.py turns it into BN on a CPU.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        norm_cfg=norm_cfg),
    head=dict(
        type='AnchorClsHead',
        num_classes=1000,
        in_channels=2048,
        loss_cls=dict(type='ClsCrossEntropyLoss')))

# resnet32_1xb128-200e_cifar100-lt-r100 + Hypersphere Anchor Loss.
# Same loss class as the segmentation configs; only the head's anchor_losses
# differ from the baseline (weights untuned).
_base_ = './resnet32_1xb128-200e_cifar100-lt-r100.py'
model = dict(head=dict(anchor_losses=[
    dict(type='HALLoss', temperature=0.1, loss_weight=0.1)
]))

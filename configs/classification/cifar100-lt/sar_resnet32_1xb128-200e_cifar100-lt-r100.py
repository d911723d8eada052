# resnet32_1xb128-200e_cifar100-lt-r100 + SAR (Ge et al., AAAI 2024) on the pooled feature, with the linear classifier as SAR's classifier.
# Same loss class as the segmentation configs; only the head's anchor_losses
# differ from the baseline (weights untuned).
_base_ = './resnet32_1xb128-200e_cifar100-lt-r100.py'
model = dict(head=dict(anchor_losses=[
    dict(type='SARLoss', norm_cfg={{_base_.norm_cfg}})
]))

# resnet32_1xb128-200e_cifar100-lt-r100 + large-margin discriminative loss with partial momentum updating (Nguyen et al. 2024); weight 0.01: its compactness term is a sum over channels.
# Same loss class as the segmentation configs; only the head's anchor_losses
# differ from the baseline (weights untuned).
_base_ = './resnet32_1xb128-200e_cifar100-lt-r100.py'
model = dict(head=dict(anchor_losses=[
    dict(type='LargeMarginLoss', margin=1.0, momentum=0.9, loss_weight=0.01)
]))

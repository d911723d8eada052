# resnet32_1xb128-200e_cifar100-lt-r100 + LDMAT distance-matrix loss (CVIU 2024).
# Same loss class as the segmentation configs; only the head's anchor_losses
# differ from the baseline (weights untuned).
_base_ = './resnet32_1xb128-200e_cifar100-lt-r100.py'
model = dict(head=dict(anchor_losses=[
    dict(type='LDMATLoss', margin=1.0, relax=0.0, max_samples=1024, loss_weight=0.1)
]))

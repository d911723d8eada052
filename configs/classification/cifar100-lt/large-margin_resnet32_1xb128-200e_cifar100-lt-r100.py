# Baseline + large-margin loss (Nguyen et al. 2024).
_base_ = './resnet32_1xb128-200e_cifar100-lt-r100.py'
model = dict(head=dict(anchor_losses=[
    dict(type='LargeMarginLoss')
]))

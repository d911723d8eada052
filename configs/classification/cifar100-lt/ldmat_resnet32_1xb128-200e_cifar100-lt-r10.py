# Baseline + LDMAT distance-matrix loss (CVIU 2024).
_base_ = './resnet32_1xb128-200e_cifar100-lt-r10.py'
model = dict(head=dict(anchor_losses=[
    dict(type='LDMATLoss')
]))

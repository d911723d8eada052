# Baseline + SAR (Ge et al., AAAI 2024) on the pooled feature.
_base_ = './resnet32_1xb128-200e_cifar10.py'
model = dict(head=dict(anchor_losses=[dict(type='SARLoss')]))

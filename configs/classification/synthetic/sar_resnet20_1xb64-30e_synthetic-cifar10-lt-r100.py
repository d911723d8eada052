# Baseline + SAR (Ge et al., AAAI 2024) on the pooled feature.
_base_ = './resnet20_1xb64-30e_synthetic-cifar10-lt-r100.py'
model = dict(head=dict(anchor_losses=[dict(type='SARLoss')]))

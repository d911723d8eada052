# Baseline + Hypersphere Anchor Loss (Ye et al. 2023).
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[dict(type='HALLoss')]))

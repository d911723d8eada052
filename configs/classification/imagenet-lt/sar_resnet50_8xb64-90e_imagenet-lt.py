# Baseline + SAR (Ge et al., AAAI 2024); projector norm = backbone's (SyncBN).
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='SARLoss', norm_cfg={{_base_.norm_cfg}})
]))

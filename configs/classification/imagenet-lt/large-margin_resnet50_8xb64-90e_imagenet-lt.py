# Baseline + large-margin loss (Nguyen et al. 2024); 0.01: sums channels.
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='LargeMarginLoss', loss_weight=0.01)
]))

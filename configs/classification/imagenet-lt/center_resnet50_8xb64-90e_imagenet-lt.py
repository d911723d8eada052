# Baseline + center loss, EMA centres (Wen et al. 2016); 0.01: sums channels.
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='CenterLoss', center_mode='ema', loss_weight=0.01)
]))

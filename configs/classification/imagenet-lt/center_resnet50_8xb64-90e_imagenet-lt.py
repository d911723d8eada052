# Baseline + center loss, EMA centres (Wen et al. 2016).
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='CenterLoss', center_mode='ema')
]))

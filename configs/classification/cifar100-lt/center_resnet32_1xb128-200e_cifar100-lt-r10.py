# Baseline + center loss, EMA centres (Wen et al. 2016).
_base_ = './resnet32_1xb128-200e_cifar100-lt-r10.py'
model = dict(head=dict(anchor_losses=[
    dict(type='CenterLoss', center_mode='ema')
]))

# resnet50_8xb64-90e_imagenet-lt + center loss with EMA centres (Wen et al. 2016); weight 0.01: its term is a sum over channels.
# Same loss class as the segmentation configs; only the head's anchor_losses
# differ from the baseline (weights untuned).
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='CenterLoss', center_mode='ema', momentum=0.5, loss_weight=0.01)
]))

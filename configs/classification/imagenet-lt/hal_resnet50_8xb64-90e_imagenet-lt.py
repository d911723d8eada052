# resnet50_8xb64-90e_imagenet-lt + Hypersphere Anchor Loss.
# Same loss class as the segmentation configs; only the head's anchor_losses
# differ from the baseline (weights untuned).
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='HALLoss', temperature=0.1, loss_weight=0.1)
]))

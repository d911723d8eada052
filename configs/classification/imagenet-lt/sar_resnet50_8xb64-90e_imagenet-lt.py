# resnet50_8xb64-90e_imagenet-lt + SAR (Ge et al., AAAI 2024) on the pooled feature, with the linear classifier as SAR's classifier.
# Same loss class as the segmentation configs; only the head's anchor_losses
# differ from the baseline (weights untuned).
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='SARLoss', norm_cfg={{_base_.norm_cfg}})
]))

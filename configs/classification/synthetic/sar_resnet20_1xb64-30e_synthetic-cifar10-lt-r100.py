# The CPU-sized baseline with SAR on the pooled feature: the same SARLoss
# class the segmentation configs use, with the linear classifier as its
# classifier. This is the whole diff.
_base_ = './resnet20_1xb64-30e_synthetic-cifar10-lt-r100.py'
model = dict(
    head=dict(anchor_losses=[dict(type='SARLoss',
                                  norm_cfg={{_base_.norm_cfg}})]))

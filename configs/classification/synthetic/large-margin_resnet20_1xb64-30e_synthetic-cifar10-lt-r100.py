# Baseline + large-margin loss with partial momentum (Nguyen et al. 2024);
# the weight is the loss' default (docs/losses.md#choosing-a-weight).
_base_ = './resnet20_1xb64-30e_synthetic-cifar10-lt-r100.py'
model = dict(head=dict(anchor_losses=[dict(type='LargeMarginLoss')]))

# resnet32_1xb128-200e_cifar100-lt-r50 + anchor-based nearest-class-mean loss (Hao et al. 2018), cosine.
# Same loss class as the segmentation configs; only the head's anchor_losses
# differ from the baseline (weights untuned). ResNet-32's 64 channels are
# fewer than 99 = K - 1, so no simplex: random unit anchors.
_base_ = './resnet32_1xb128-200e_cifar100-lt-r50.py'
model = dict(head=dict(anchor_losses=[
    dict(type='ANCMLoss', anchor_init='hypersphere', distance='cosine', scale=16.0, loss_weight=0.1)
]))

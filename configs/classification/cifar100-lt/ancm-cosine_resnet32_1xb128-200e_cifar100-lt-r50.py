# Baseline + ANCM, cosine (Hao et al. 2018); C=64 < K-1: unit anchors.
_base_ = './resnet32_1xb128-200e_cifar100-lt-r50.py'
model = dict(head=dict(anchor_losses=[
    dict(type='ANCMLoss', anchor_init='hypersphere', distance='cosine')
]))

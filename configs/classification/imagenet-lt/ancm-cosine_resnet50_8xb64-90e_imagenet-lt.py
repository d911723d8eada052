# Baseline + ANCM, cosine (Hao et al. 2018).
_base_ = './resnet50_8xb64-90e_imagenet-lt.py'
model = dict(head=dict(anchor_losses=[
    dict(type='ANCMLoss', distance='cosine')
]))

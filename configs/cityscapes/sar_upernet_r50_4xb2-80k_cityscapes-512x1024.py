# SAR (Semantic Anchor Regularization, Ge et al., AAAI 2024) on UPerNet R-50.
# The only difference from ./upernet_r50_4xb2-80k_cityscapes-512x1024.py
# (MMSeg's upernet_r50_4xb2-80k_cityscapes-512x1024.py plus shared run
# settings): the decode head is wrapped in SARHead with one SARLoss, with the
# reference implementation's hyper-parameters written out.
_base_ = './upernet_r50_4xb2-80k_cityscapes-512x1024.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[
            dict(
                type='SARLoss',
                norm_cfg=dict(type='SyncBN', requires_grad=True),
                filter_conf=0.9,
                update_conf=0.8,
                momentum=0.999,
                anchor_weight=1.0,
                pull_weight=0.1)
        ]))

# SAR (Semantic Anchor Regularization, Ge et al., AAAI 2024) on DeepLabV3+
# R-101-D8. The only difference from
# ./deeplabv3plus_r101-d8_4xb4-160k_ade20k-512x512.py (MMSeg's
# deeplabv3plus_r101-d8_4xb4-160k_ade20k-512x512.py plus shared run
# settings): the decode head is wrapped in SARHead with one SARLoss, with the
# reference implementation's hyper-parameters written out.
_base_ = './deeplabv3plus_r101-d8_4xb4-160k_ade20k-512x512.py'
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

# SAR (Semantic Anchor Regularization, Ge et al., AAAI 2024) on SegFormer
# MiT-B0. The only difference from
# ./segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py (MMSeg's
# segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py plus shared run
# settings): the decode head is wrapped in SARHead with one SARLoss, with the
# reference implementation's hyper-parameters written out.
# MMSeg's SegFormer Cityscapes schedule (160k iterations, 1024x1024 crops) is
# kept, not 80k at 512x1024.
_base_ = './segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'
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

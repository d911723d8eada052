# SAR (Semantic Anchor Regularization, Ge et al., AAAI 2024) on SegFormer
# MiT-B5. The only difference from
# ./segformer_mit-b5_8xb2-160k_ade20k-640x640.py (MMSeg's
# segformer_mit-b5_8xb2-160k_ade20k-640x640.py plus shared run settings): the
# decode head is wrapped in SARHead with one SARLoss, with the reference
# implementation's hyper-parameters written out.
_base_ = './segformer_mit-b5_8xb2-160k_ade20k-640x640.py'
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

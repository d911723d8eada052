# SAR (Semantic Anchor Regularization, Ge et al., AAAI 2024) on OCRNet
# HRNetV2-W48 (cascade). The only difference from
# ./ocrnet_hr48_4xb4-160k_ade20k-512x512.py (MMSeg's
# ocrnet_hr48_4xb4-160k_ade20k-512x512.py plus shared run settings): the
# decode head is wrapped in SARHead with one SARLoss, with the reference
# implementation's hyper-parameters written out.
# Cascade: only the last head (OCRHead) is wrapped; the first head (the
# FCNHead giving OCRNet's soft object regions) is kept as is. mmengine's
# double-brace base substitution takes no list index, so the base list is
# indexed directly as a Python expression, _base_.model.decode_head[i]; a
# list in a child config replaces the base's, so no _delete_ is needed.
_base_ = './ocrnet_hr48_4xb4-160k_ade20k-512x512.py'
model = dict(decode_head=[
    _base_.model.decode_head[0],
    dict(
        type='SARHead',
        head=_base_.model.decode_head[1],
        anchor_losses=[
            dict(
                type='SARLoss',
                norm_cfg=dict(type='SyncBN', requires_grad=True),
                filter_conf=0.9,
                update_conf=0.8,
                momentum=0.999,
                anchor_weight=1.0,
                pull_weight=0.1)
        ])
])

# SAR on UPerNet R-50: the baseline + SARHead (docs/configs.md).
_base_ = './upernet_r50_4xb4-160k_ade20k-512x512.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='SARLoss')]))

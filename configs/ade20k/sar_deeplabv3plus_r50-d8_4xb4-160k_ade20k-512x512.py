# SAR on DeepLabV3+ R-50-D8: the baseline + SARHead (docs/configs.md).
_base_ = './deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='SARLoss')]))

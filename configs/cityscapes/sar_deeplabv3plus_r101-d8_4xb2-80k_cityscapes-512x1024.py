# SAR on DeepLabV3+ R-101-D8: the baseline + SARHead (docs/configs.md).
_base_ = './deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='SARLoss')]))

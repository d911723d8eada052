# SAR on OCRNet HRNetV2-W48: its last head in a SARHead (docs/configs.md).
_base_ = './ocrnet_hr48_4xb4-160k_ade20k-512x512.py'
model = dict(decode_head=[
    _base_.model.decode_head[0],
    dict(
        type='SARHead',
        head=_base_.model.decode_head[1],
        anchor_losses=[dict(type='SARLoss')])
])

# SAR on SegFormer MiT-B0: the baseline + SARHead (docs/configs.md).
_base_ = './segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='SARLoss')]))

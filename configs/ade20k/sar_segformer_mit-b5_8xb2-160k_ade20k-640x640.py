# SAR on SegFormer MiT-B5: the baseline + SARHead (docs/configs.md).
_base_ = './segformer_mit-b5_8xb2-160k_ade20k-640x640.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='SARLoss')]))

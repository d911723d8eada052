# CamVid, GPU-sized: SAR on PSPNet R-50-D8.
_base_ = './pspnet_r50-d8_4xb4-20k_camvid-360x480.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='SARLoss')]))

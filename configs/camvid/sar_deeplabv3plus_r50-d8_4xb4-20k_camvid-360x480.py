# CamVid, GPU-sized: SAR on deeplabv3plus R-50-D8 (reference hyper-parameters).
_base_ = './deeplabv3plus_r50-d8_4xb4-20k_camvid-360x480.py'
norm_cfg = {{_base_.norm_cfg}}
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[
            dict(type='SARLoss', norm_cfg=norm_cfg, filter_conf=0.9,
                 update_conf=0.8, momentum=0.999, anchor_weight=1.0,
                 pull_weight=0.1)
        ]))

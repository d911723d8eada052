# CamVid, CPU-sized: SAR (Ge et al., AAAI 2024), reference hyper-parameters.
# The baseline with its decode head wrapped; nothing else changes.
_base_ = './fcn_m-v2-d8_1xb4-4k_camvid-180x240.py'
norm_cfg = {{_base_.norm_cfg}}
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[
            dict(type='SARLoss', norm_cfg=norm_cfg, filter_conf=0.9, update_conf=0.8, momentum=0.999, anchor_weight=1.0, pull_weight=0.1)
        ]))

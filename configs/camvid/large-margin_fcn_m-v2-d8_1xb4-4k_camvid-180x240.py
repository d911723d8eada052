# CamVid, CPU-sized: large-margin loss with partial momentum (Nguyen et al. 2024).
# The baseline with its decode head wrapped; nothing else changes.
_base_ = './fcn_m-v2-d8_1xb4-4k_camvid-180x240.py'
norm_cfg = {{_base_.norm_cfg}}
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[
            dict(type='LargeMarginLoss', margin=1.0, momentum=0.9, loss_weight=0.1)
        ]))

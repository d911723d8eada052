# CamVid, CPU-sized: center loss, EMA centres (Wen et al. 2016).
_base_ = './fcn_m-v2-d8_1xb4-4k_camvid-180x240.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[
            dict(type='CenterLoss', center_mode='ema')
        ]))

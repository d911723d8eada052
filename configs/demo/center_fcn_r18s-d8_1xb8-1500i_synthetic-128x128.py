# Demo: center loss (Wen et al. 2016), EMA centres.
_base_ = './fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[
            dict(type='CenterLoss', center_mode='ema')
        ]))

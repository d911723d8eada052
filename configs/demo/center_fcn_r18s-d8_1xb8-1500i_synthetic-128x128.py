# Demo: Center loss (Wen et al. 2016), EMA centres.
# Same data and schedule as the baseline; only the decode head is wrapped.
_base_ = './fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='CenterLoss', center_mode='ema', momentum=0.5, loss_weight=0.1)]))

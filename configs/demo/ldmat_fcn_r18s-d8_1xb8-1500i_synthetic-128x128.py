# Demo: LDMAT (Ribeiro et al., CVIU 2024): distance-matrix loss on <=1024 class-balanced pixels.
# Same data and schedule as the baseline; only the decode head is wrapped.
_base_ = './fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='LDMATLoss', margin=1.0, relax=0.0, max_samples=1024, loss_weight=0.1)]))

# Demo: Hypersphere Anchor Loss (Ye et al. 2023): NCA to fixed unit anchors, tau=0.1.
# Same data and schedule as the baseline; only the decode head is wrapped.
_base_ = './fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[dict(type='HALLoss', temperature=0.1, loss_weight=0.1)]))

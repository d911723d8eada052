# CamVid, CPU-sized: ANCM, cosine, s=16 (Hao et al. 2018).
_base_ = './fcn_m-v2-d8_1xb4-4k_camvid-180x240.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SARHead',
        head={{_base_.model.decode_head}},
        anchor_losses=[
            dict(type='ANCMLoss', distance='cosine')
        ]))

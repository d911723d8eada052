# The held-out CamVid baseline with class-weighted cross-entropy, the first
# long-tail baseline users try: median-frequency balancing (Eigen & Fergus
# 2015, as SegNet): w_c = median_k(f_k) / f_c with f the pixel shares of the
# 305 training frames (camvid_heldout_train_frequency.json), 3 decimals.
_base_ = './fcn_m-v2-d8_1xb4-4k_camvid-180x240-heldout.py'
model = dict(
    decode_head=dict(
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            class_weight=[
                0.274, 0.203, 4.489, 0.131, 1.0, 0.477, 3.829, 3.544, 0.854,
                7.114, 18.449
            ])))

# The ImageNet-LT schedule of Kang et al. (ICLR 2020, "Decoupling"): 90
# epochs of SGD (lr 0.2, momentum 0.9, weight decay 5e-4, batch 512 = 8 GPUs
# x 64) with cosine decay; we add a 5-epoch linear warm-up.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=85,
        eta_min=0.0,
        by_epoch=True,
        begin=5,
        end=90,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=90, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=512)

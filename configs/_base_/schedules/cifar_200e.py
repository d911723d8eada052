# The CIFAR(-LT) schedule of the long-tail literature (LDAM-DRW, Cao et al.
# 2019): 200 epochs of SGD (lr 0.1, momentum 0.9, weight decay 2e-4, batch
# 128), linear warm-up over the first 5 epochs, lr x0.01 at epochs 160 and
# 180 (LDAM-DRW's factors: 0.1 -> 1e-3 -> 1e-5).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[160, 180],
         gamma=0.01),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=128)

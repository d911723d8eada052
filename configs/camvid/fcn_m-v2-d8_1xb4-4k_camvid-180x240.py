# CamVid, CPU-sized baseline: FCN on MobileNetV2-D8 at half resolution
# (180x240), batch 4, 4k iterations: about 30-40 minutes on 2 CPU cores.
# Trained from scratch (pretrained=None) so that it runs offline; with
# internet access set model.pretrained='mmcls://mobilenet_v2'.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    '../_base_/datasets/camvid_180x240.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
    '../_base_/sar_runtime.py',
]
default_scope = 'sar_plugin'  # sar_plugin's checking loaders (sar_runtime.py)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(size={{_base_.crop_size}})
model = dict(
    _scope_='sar_plugin',  # MMSeg's model base tags it 'mmseg'
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.,
        strides=(1, 2, 2, 1, 1, 1, 1),
        dilations=(1, 1, 1, 2, 2, 4, 4),
        out_indices=(1, 2, 4, 6),
        norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=320, channels=128, num_convs=1, concat_input=False,
        num_classes=11),
    auxiliary_head=None,
    test_cfg=dict(mode='whole'))
max_iters = 4000
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=200, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=1000)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000,
                    max_keep_ckpts=2, save_best='mIoU'))
randomness = dict(seed=0)

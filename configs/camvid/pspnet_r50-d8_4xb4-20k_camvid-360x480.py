# CamVid, GPU-sized baseline: pspnet R-50-D8 (ImageNet-pretrained, as in
# MMSeg), full resolution 360x480, 4 GPUs x 4 images, 20k iterations.
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/camvid.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
    '../_base_/sar_runtime.py',
]
default_scope = 'sar_plugin'  # sar_plugin's checking loaders (sar_runtime.py)
crop_size = (360, 480)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    _scope_='sar_plugin',  # MMSeg's model base tags it 'mmseg'
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=11),
    auxiliary_head=dict(num_classes=11),
    test_cfg=dict(mode='whole'))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000,
                    max_keep_ckpts=2, save_best='mIoU'))
randomness = dict(seed=0)

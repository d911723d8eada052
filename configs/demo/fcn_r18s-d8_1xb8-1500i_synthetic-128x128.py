# Demo baseline: plain FCN on the embedded long-tailed set (CPU, minutes).
_base_ = [
    'mmseg::_base_/default_runtime.py',
    '../_base_/models/fcn_r18s-d8.py',
    '../_base_/datasets/synthetic_longtail.py',
    '../_base_/sar_runtime.py',
]
default_scope = 'sar_plugin'  # sar_plugin's checking loaders (sar_runtime.py)
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
max_iters = 1500
optimizer = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=100,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
# Long-tail evaluation: IoU per class and per head/body/tail bucket (buckets
# from the data set's training pixel counts) and the compactness of the
# decode head's input features (LongTailEvalHook hands them to the metric).
# Both write their per-class records under <work_dir>/<timestamp>/, which
# tools/longtail_report.py turns into a report.
val_evaluator = [
    dict(type='LongTailIoUMetric', iou_metrics=['mIoU']),
    dict(type='FeatureCompactnessMetric', per_class=256,
         per_class_keys=False),  # per-class values: in the JSON record
]
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)

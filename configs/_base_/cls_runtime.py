# Runtime of the image-classification configs: MMSeg's runtime (default scope
# `mmseg`, logging, visualizer backends) with epoch-based logging and
# checkpoints, no segmentation visualization hook, and sar_plugin's hooks
# (./sar_runtime.py: exact resume, AMP-skip guard, the feature export that
# FeatureCompactnessMetric reads, records).
_base_ = ['mmseg::_base_/default_runtime.py', './sar_runtime.py']
default_scope = 'sar_plugin'  # sar_plugin's checking loaders (sar_runtime.py)
log_processor = dict(by_epoch=True)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=True,
        interval=10,
        max_keep_ckpts=2,
        save_best='top1',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
randomness = dict(seed=0)

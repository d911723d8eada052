# Runtime of the image-classification configs: MMSeg's runtime (default scope
# `mmseg`, logging, visualizer backends) with epoch-based logging and
# checkpoints, no segmentation visualization hook, and the feature export
# that FeatureCompactnessMetric reads.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['sar_plugin'], allow_failed_imports=False)
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
custom_hooks = [dict(type='FeatureExportHook'), dict(type='RecordDirHook')]
randomness = dict(seed=0)

# UPerNet R-50: MMSeg's config + run settings (docs/configs.md).
_base_ = [
    'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    '../_base_/longtail_eval.py'
]
custom_imports = dict(imports=['sar_plugin'], allow_failed_imports=False)
randomness = dict(seed=0)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=16000,  # = train_cfg.val_interval (MMSeg's)
        max_keep_ckpts=2,
        save_best='mIoU'))
# long-tail evaluation (configs/_base_/longtail_eval.py)
val_evaluator = {{_base_.longtail_evaluator}}
test_evaluator = val_evaluator
custom_hooks = {{_base_.longtail_hooks}}

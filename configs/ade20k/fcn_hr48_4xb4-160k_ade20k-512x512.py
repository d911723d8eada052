# FCN + HRNetV2-W48: MMSeg's config + run settings (docs/configs.md).
_base_ = [
    'mmseg::hrnet/fcn_hr48_4xb4-160k_ade20k-512x512.py',
    '../_base_/longtail_eval.py',
    '../_base_/sar_runtime.py',
]
default_scope = 'sar_plugin'  # sar_plugin's checking loaders (sar_runtime.py)
# sar_plugin's scope for what MMSeg's config tags `_scope_='mmseg'`: the
# checking data set and LoadAnnotations, the ignore-safe CrossEntropyLoss
model = dict(_scope_='sar_plugin')
train_dataloader = dict(dataset=dict(_scope_='sar_plugin'))
val_dataloader = dict(dataset=dict(_scope_='sar_plugin'))
test_dataloader = val_dataloader
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

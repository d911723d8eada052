# What every sar_plugin run needs, whichever tool trains it: MMSeg's own
# tools/train.py, `mim train mmseg`, or sar_plugin's tools/train.py give the
# same run from a config that inherits this file. Put it in `_base_`; a
# config that sets `custom_hooks` itself replaces this list (copy it), one
# that sets `custom_imports` keeps 'sar_plugin' in its `imports`.
#
# MMEngine forbids two bases defining one key, and MMSeg's
# default_runtime.py defines `default_scope`, so the config itself sets
#     default_scope = 'sar_plugin'
# which selects sar_plugin's fixes kept under MMSeg's names (checking
# LoadAnnotations/CityscapesDataset/ADE20KDataset, the class-weighted
# CrossEntropyLoss; see sar_plugin/registry.py) and falls back to MMSeg's
# registries for everything else.
custom_imports = dict(imports=['sar_plugin'], allow_failed_imports=False)
custom_hooks = [
    # the checks that refuse a bad run: one run per work dir (a second
    # writer is refused, naming the holder); checkpoints load under torch
    # >= 2.6's weights_only, and a resume whose checkpoint holds another
    # model is refused; a training label outside the classes raises naming
    # its file (the long-tail metrics check evaluation labels themselves)
    dict(type='RunCheckHook', evaluation=False),
    # exact resume: the RNG streams (torch, CUDA, numpy, random) are saved
    # and restored at the dataloader's sampler position
    dict(type='ExactResumeHook'),
    # a step the AMP grad scaler skips leaves the anchor losses' state as it
    # was (nothing to do without a loss scaler)
    dict(type='AnchorStateHook'),
    # the long-tail metrics' run context: class_frequency='auto' (the
    # training split counted once, cached in the work dir), the
    # classifier's input features for FeatureCompactnessMetric, and the
    # records under the run's log dir
    dict(type='LongTailEvalHook'),
]

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
    # one run per work dir: a second writer is refused, naming the holder
    dict(type='WorkDirLockHook'),
    # a training label outside the classes raises naming its file (the
    # long-tail metrics check evaluation labels themselves)
    dict(type='SegLabelCheckHook', evaluation=False),
    # exact resume: the RNG streams (torch, CUDA, numpy, random) and the
    # dataloader's sampler position are saved and restored
    dict(type='RNGStateHook'),
    # a step the AMP grad scaler skips leaves the anchor losses' state as it
    # was (nothing to do without a loss scaler)
    dict(type='AnchorStateGuardHook'),
    # checkpoints of MMEngine load under torch >= 2.6's weights_only, and a
    # resume whose checkpoint holds another model is refused
    dict(type='ResumeCheckHook'),
    # class_frequency='auto' of the long-tail metrics: the training split's
    # classes are counted once and cached in the work dir
    dict(type='ClassFrequencyHook'),
    # the classifier's input features for FeatureCompactnessMetric
    dict(type='FeatureExportHook'),
    # the long-tail evaluation records under the run's log dir
    dict(type='RecordDirHook'),
]

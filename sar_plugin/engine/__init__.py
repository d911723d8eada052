from .anchor_state_guard_hook import AnchorStateGuardHook, anchor_loss_buffers
from .anchor_state_hook import AnchorStateSyncCheckHook, anchor_state
from .class_frequency_hook import ClassFrequencyHook
from .feature_export_hook import FeatureExportHook, find_classifier
from .label_check_hook import SegLabelCheckHook
from .record_dir_hook import RecordDirHook
from .resume_check_hook import ResumeCheckHook
from .rng_state_hook import (RNGStateHook, capture_rng_state,
                             restore_rng_state)
from .work_dir_lock_hook import WorkDirLockHook

__all__ = [
    'AnchorStateSyncCheckHook', 'anchor_state', 'FeatureExportHook',
    'find_classifier', 'AnchorStateGuardHook', 'anchor_loss_buffers',
    'RNGStateHook', 'capture_rng_state', 'restore_rng_state',
    'ResumeCheckHook', 'SegLabelCheckHook', 'RecordDirHook',
    'ClassFrequencyHook', 'WorkDirLockHook'
]

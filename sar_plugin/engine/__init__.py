from .anchor_state_hook import AnchorStateSyncCheckHook, anchor_state
from .feature_export_hook import FeatureExportHook, find_classifier

__all__ = [
    'AnchorStateSyncCheckHook', 'anchor_state', 'FeatureExportHook',
    'find_classifier'
]

from .anchor_state_hook import (AnchorStateHook, anchor_loss_buffers,
                                anchor_losses)
from .exact_resume_hook import (ExactResumeHook, capture_rng_state,
                                restore_rng_state)
from .feature_export import FeatureExporter, find_classifier
from .longtail_eval_hook import LongTailEvalHook
from .run_check_hook import RunCheckHook

__all__ = [
    'AnchorStateHook', 'anchor_losses', 'anchor_loss_buffers',
    'ExactResumeHook', 'capture_rng_state', 'restore_rng_state',
    'FeatureExporter', 'find_classifier', 'LongTailEvalHook', 'RunCheckHook'
]

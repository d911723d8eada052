from .anchor_state_hook import AnchorStateSyncCheckHook, anchor_state

__all__ = ['AnchorStateSyncCheckHook', 'anchor_state']

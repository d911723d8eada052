from .anchor_cls_head import AnchorClsHead
from .sar_head import SARHead, mark_runtime_hook, sar_class

__all__ = ['SARHead', 'AnchorClsHead', 'mark_runtime_hook', 'sar_class']

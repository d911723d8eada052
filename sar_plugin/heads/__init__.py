from . import plain_compat  # noqa: F401  (plain heads load SAR checkpoints)
from .anchor_cls_head import AnchorClsHead
from .sar_head import FeatureCapture, SARHead

__all__ = ['SARHead', 'FeatureCapture', 'AnchorClsHead']

from . import plain_compat  # noqa: F401  (plain heads load SAR checkpoints)
from .sar_head import FeatureCapture, SARHead

__all__ = ['SARHead', 'FeatureCapture']

from .sar_head import FeatureCapture, SARHead

__all__ = ['SARHead', 'FeatureCapture']

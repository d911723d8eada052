"""Transforms beside MMSeg's: the checking ``LoadAnnotations`` (in
sar_plugin's scope), classification packing and crops."""
from .formatting import PackClsInputs
from .loading import LoadAnnotations
from .processing import RandomPadCrop, RandomResizedCrop

__all__ = ['LoadAnnotations', 'PackClsInputs', 'RandomPadCrop',
           'RandomResizedCrop']

"""Data structures: :class:`ClsDataSample`, the per-image sample of the
classification path (MMSeg has ``SegDataSample`` only)."""
from .cls_data_sample import ClsDataSample

__all__ = ['ClsDataSample']

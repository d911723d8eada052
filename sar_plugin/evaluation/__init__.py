from .longtail_iou import LongTailIoUMetric

__all__ = ['LongTailIoUMetric']

"""Long-tail reports from finished runs' evaluation records
(``tools/longtail_report.py``)."""
from .builder import make_report
from .runs import RunRecord, class_order, find_record, load_run

__all__ = ['make_report', 'load_run', 'find_record', 'class_order',
           'RunRecord']

"""Long-tail reports from finished runs' evaluation records
(``tools/longtail_report.py``)."""
from .builder import make_report
from .runs import RunRecord, class_order, find_record, load_run
from .sweep import make_sweep_report

__all__ = ['make_report', 'make_sweep_report', 'load_run', 'find_record',
           'class_order', 'RunRecord']

"""Side-by-side benchmarks of the anchor losses and of whole training steps
(``benchmarks/run.py loss|train``).

Not part of the installed ``sar_plugin``: it lives beside ``benchmarks/run.py``
(whose directory is on ``sys.path`` when it runs as a script) and reaches the
tests through pytest's ``pythonpath`` (``pyproject.toml``)."""
from .losses import hal_vs_pairwise, loss_table, reference_style_sar_pull
from .measure import Case, Result, measure, paired_ratio, peak_bytes

__all__ = [
    'Case', 'Result', 'measure', 'paired_ratio', 'peak_bytes', 'loss_table',
    'hal_vs_pairwise', 'reference_style_sar_pull'
]

from sar_plugin._stack import mmseg_available  # noqa: E402

if mmseg_available():  # whole training steps need MMSeg; the losses do not
    from .train import model_variants, strip_anchor_losses, train_table
    __all__ += ['model_variants', 'strip_anchor_losses', 'train_table']

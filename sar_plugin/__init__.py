"""sar_plugin: Semantic Anchor Regularization and the anchor-loss family for
MMSegmentation 1.x.

``import sar_plugin`` registers everything in the MMSeg registries
(``MODELS``, ``DATASETS``, ``METRICS``, ``HOOKS``, ``OPTIM_WRAPPERS``) and
allow-lists MMEngine's checkpoint types for torch's ``weights_only`` loading
(see :mod:`sar_plugin.utils.checkpoint`); configs do it with
``custom_imports=dict(imports=['sar_plugin'], allow_failed_imports=False)``.
"""
from ._stack import check_stack

# torch and mmcv (with ops) are the user's builds, never pip dependencies:
# name what is missing before ``import mmseg`` fails obscurely.
check_stack()

from . import (classification, datasets, engine, evaluation, heads,  # noqa: E402,F401
               losses, structures, utils)
from .anchors import ANCHOR_KINDS, build_anchors  # noqa: E402
from .utils.checkpoint import allow_mmengine_checkpoints  # noqa: E402
from .version import __version__  # noqa: E402

# torch >= 2.6 loads with weights_only=True: allow-list what MMEngine runner
# checkpoints hold, so --resume / load_from work with any MMSeg tool.
allow_mmengine_checkpoints()

__all__ = ['__version__', 'build_anchors', 'ANCHOR_KINDS']

"""sar_plugin: Semantic Anchor Regularization and the anchor-loss family for
MMSegmentation 1.x.

``import sar_plugin`` registers everything in the MMSeg registries
(``MODELS``, ``DATASETS``, ``METRICS``, ``HOOKS``, ``OPTIM_WRAPPERS``) and
allow-lists MMEngine's checkpoint types for torch's ``weights_only`` loading
(see :mod:`sar_plugin.utils.checkpoint`); configs do it with
``custom_imports=dict(imports=['sar_plugin'], allow_failed_imports=False)``.
"""
from . import (classification, datasets, engine, evaluation, heads,  # noqa: F401
               losses, structures, utils)
from .anchors import ANCHOR_KINDS, build_anchors
from .utils.checkpoint import allow_mmengine_checkpoints
from .version import __version__

# torch >= 2.6 loads with weights_only=True: allow-list what MMEngine runner
# checkpoints hold, so --resume / load_from work with any MMSeg tool.
allow_mmengine_checkpoints()

__all__ = ['__version__', 'build_anchors', 'ANCHOR_KINDS']

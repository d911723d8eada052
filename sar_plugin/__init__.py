"""sar_plugin: Semantic Anchor Regularization and the anchor-loss family for
MMSegmentation 1.x.

``import sar_plugin`` registers everything in the MMSeg registries
(``MODELS``, ``DATASETS``, ``METRICS``); configs do it with
``custom_imports=dict(imports=['sar_plugin'], allow_failed_imports=False)``.
"""
from . import datasets, evaluation, heads, losses, utils  # noqa: F401
from .anchors import ANCHOR_KINDS, build_anchors
from .version import __version__

__all__ = ['__version__', 'build_anchors', 'ANCHOR_KINDS']

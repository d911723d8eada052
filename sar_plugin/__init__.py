"""sar_plugin: Semantic Anchor Regularization and the anchor-loss family for
MMSegmentation 1.x.

``import sar_plugin`` only adds: it registers the plug-in's new names in
MMSeg's registries (``SARHead``, the losses, metrics, hooks, data sets...)
and its fixes of MMSeg behaviour under MMSeg's names in its own child
registries (:mod:`sar_plugin.registry`, scope ``sar_plugin``). It changes no
registry entry, class or global state of mmseg, mmengine, torch or
matplotlib. Configs import it with ``custom_imports``; the shipped ones also
set ``default_scope = 'sar_plugin'`` and inherit the hooks of
``configs/_base_/sar_runtime.py``.

Without MMSeg installed, ``import sar_plugin`` (or ``sar_plugin.losses``)
gives the torch-only core: the losses and the anchors, plain
``nn.Module`` objects for any PyTorch training loop.

Loading MMEngine runner checkpoints under torch >= 2.6's ``weights_only``
needs an allow-list: :func:`enable_safe_loading` switches it on for the
process (the plug-in's tools and ``RunCheckHook`` call it; importing
never does), :func:`safe_loading` for a ``with`` block.
"""
from ._stack import check_stack, mmseg_available

if mmseg_available():
    # torch and mmcv (with ops) are the user's builds, never pip
    # dependencies: name what is missing before ``import mmseg`` fails
    # obscurely
    check_stack()
    from . import registry  # noqa: E402,F401
    from . import (classification, datasets, engine, evaluation,  # noqa
                   heads, losses, structures, utils)
    from .utils.checkpoint import enable_safe_loading, safe_loading  # noqa
    __all__ = ['enable_safe_loading', 'safe_loading']
else:  # torch alone: the losses and the anchors
    from . import losses  # noqa: F401
    __all__ = []

from .anchors import ANCHOR_KINDS, build_anchors  # noqa: E402
from .version import __version__  # noqa: E402

__all__ += ['__version__', 'build_anchors', 'ANCHOR_KINDS']

"""Undo the anchor losses' state updates of an optimizer step that did not
happen.

The anchor losses update their state (EMA centres, semantic anchors, gate,
the projector's norm statistics) in the forward pass. Under fp16 AMP the
grad scaler skips the optimizer step when the gradients overflow; the
network's weights then stay as they were, but the losses' state would have
moved on a step that, for the optimizer, never happened.
:class:`AnchorStateGuardHook` snapshots that state at the start of each
optimizer step (of each accumulation window) and restores it when the step
was skipped. A step counts as taken when the optimizer's ``step`` ran
(a post-step hook on each optimizer); a skipped one is an iteration at which
the optim wrapper should have stepped and did not.
"""
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmseg.registry import HOOKS
from torch import Tensor, nn

from ..heads.sar_head import mark_runtime_hook
from ..losses.base import FeatureLoss


def anchor_loss_buffers(model: nn.Module) -> Dict[str, Tensor]:
    """Every buffer of every anchor loss in ``model``, by full name."""
    if is_model_wrapper(model):
        model = model.module
    return {
        f'{name}.{buf_name}': buf
        for name, module in model.named_modules()
        if isinstance(module, FeatureLoss)
        for buf_name, buf in module.named_buffers()
    }


@HOOKS.register_module()
class AnchorStateGuardHook(Hook):
    """Keep the anchor losses' state in step with the optimizer.

    ``configs/_base_/sar_runtime.py`` lists it; it only does work when the
    optim wrapper can skip steps (it has a ``loss_scaler``, as MMEngine's
    ``AmpOptimWrapper``) or ``always=True``.

    Args:
        always (bool): Guard every step, whatever the optim wrapper.
    """

    priority = 'ABOVE_NORMAL'  # restore before CheckpointHook saves

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self._handles: List = []
        self._stepped = False
        self._snapshot: Optional[Dict[str, Tensor]] = None
        self._active = False

    @staticmethod
    def _wrappers(runner) -> list:
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return list(wrapper.values())
        return [wrapper]

    def before_run(self, runner) -> None:
        mark_runtime_hook(runner.model, 'AnchorStateGuardHook')

    def before_train(self, runner) -> None:
        wrappers = self._wrappers(runner)
        self._active = bool(anchor_loss_buffers(runner.model)) and (
            self.always or any(hasattr(w, 'loss_scaler') for w in wrappers))
        if not self._active:
            return
        for wrapper in wrappers:
            self._handles.append(
                wrapper.optimizer.register_step_post_hook(self._on_step))

    def _on_step(self, *args, **kwargs) -> None:
        self._stepped = True

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._active and self._snapshot is None:
            self._stepped = False
            self._snapshot = {
                name: buf.detach().clone()
                for name, buf in anchor_loss_buffers(runner.model).items()
            }

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self._active or self._snapshot is None:
            return
        if not any(w.should_update() for w in self._wrappers(runner)):
            return  # inside an accumulation window: no step due yet
        if not self._stepped:
            with torch.no_grad():
                for name, buf in anchor_loss_buffers(runner.model).items():
                    buf.copy_(self._snapshot[name])
            print_log(f'Iteration {runner.iter + 1}: the optimizer step was '
                      'skipped (gradient overflow); the anchor losses\' state '
                      'was restored to match.', logger='current', level=30)
        self._snapshot = None

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._snapshot = None

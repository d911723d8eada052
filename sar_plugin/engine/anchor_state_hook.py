"""Keep the anchor losses' state in step with the optimizer, and the same
on every rank.

The losses write their state (EMA centres, semantic anchors, gate) once per
training forward, only from a finite step (:class:`FeatureLoss`). Two
things only the runner knows are left:

- Under fp16 AMP the grad scaler skips the optimizer step when the
  gradients overflow; the weights stay as they were, and so must the
  losses' state. At the start of each optimizer step (of each gradient
  accumulation window) the hook asks every loss to
  :meth:`~FeatureLoss.hold_state` (later writes rebind the buffers, so the
  old tensors stay: nothing is copied), and after it to release it (step
  taken) or :meth:`~FeatureLoss.restore_state` (skipped).
- MMEngine wraps models with ``broadcast_buffers=False``; the losses keep
  their state rank-consistent themselves. With ``check_interval`` the hook
  verifies that (all-gathers the state and raises on a difference).
"""
import os
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmseg.registry import HOOKS
from torch import Tensor, nn

from ..heads.sar_head import mark_runtime_hook
from ..losses.base import FeatureLoss


def anchor_losses(model: nn.Module) -> Dict[str, FeatureLoss]:
    """Every anchor loss in ``model``, by its module name."""
    if is_model_wrapper(model):
        model = model.module
    return {name: m for name, m in model.named_modules()
            if isinstance(m, FeatureLoss)}


def anchor_loss_buffers(model: nn.Module) -> Dict[str, Tensor]:
    """Every buffer of every anchor loss in ``model``, by full name."""
    return {f'{name}.{buf_name}': buf
            for name, loss in anchor_losses(model).items()
            for buf_name, buf in loss.named_buffers()}


@HOOKS.register_module()
class AnchorStateHook(Hook):
    """Undo the anchor losses' state writes of a skipped optimizer step;
    optionally check the state is identical on every rank.

    ``configs/_base_/sar_runtime.py`` lists it. The AMP part only acts when
    the optim wrapper can skip steps (it has a ``loss_scaler``, as
    MMEngine's ``AmpOptimWrapper``) or ``always=True``.

    Args:
        always (bool): Hold the state over every step, whatever the optim
            wrapper.
        check_interval (int, optional): Every this many iterations (and
            after training) all-gather the losses' buffers and raise if a
            rank differs from rank 0. None: no check.
        dump_dir (str, optional): With ``check_interval``, every rank saves
            its final state to ``dump_dir/anchor_state_rank{r}.pth``.
    """

    priority = 'ABOVE_NORMAL'  # restore before CheckpointHook saves

    def __init__(self, always: bool = False,
                 check_interval: Optional[int] = None,
                 dump_dir: Optional[str] = None) -> None:
        self.always = always
        self.check_interval = check_interval
        self.dump_dir = dump_dir
        self._handles: List = []
        self._stepped = False
        self._holding = False
        self._active = False

    @staticmethod
    def _wrappers(runner) -> list:
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return list(wrapper.values())
        return [wrapper]

    def before_run(self, runner) -> None:
        mark_runtime_hook(runner.model, 'AnchorStateHook')

    def before_train(self, runner) -> None:
        wrappers = self._wrappers(runner)
        self._active = bool(anchor_losses(runner.model)) and (
            self.always or any(hasattr(w, 'loss_scaler') for w in wrappers))
        if self._active:
            self._handles = [w.optimizer.register_step_post_hook(self._on_step)
                             for w in wrappers]

    def _on_step(self, *args, **kwargs) -> None:
        self._stepped = True

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._active and not self._holding:
            self._stepped, self._holding = False, True
            for loss in anchor_losses(runner.model).values():
                loss.hold_state()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self._active and self._holding and any(
                w.should_update() for w in self._wrappers(runner)):
            for loss in anchor_losses(runner.model).values():
                if self._stepped:
                    loss.release_state()
                else:
                    loss.restore_state()
            if not self._stepped:
                print_log(f'Iteration {runner.iter + 1}: the optimizer step '
                          'was skipped (gradient overflow); the anchor '
                          'losses\' state was restored to match.',
                          logger='current', level=30)
            self._holding = False
        if self.check_interval and self.every_n_train_iters(
                runner, self.check_interval):
            n = self.check(runner)
            runner.logger.info(f'anchor state: {n} buffers identical on '
                               f'{dist.get_world_size()} rank(s)')

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._holding:
            for loss in anchor_losses(runner.model).values():
                loss.release_state()
            self._holding = False
        if self.check_interval:
            self.check(runner)
            if self.dump_dir is not None:
                os.makedirs(self.dump_dir, exist_ok=True)
                torch.save(
                    {k: v.cpu()
                     for k, v in anchor_loss_buffers(runner.model).items()},
                    osp.join(self.dump_dir,
                             f'anchor_state_rank{dist.get_rank()}.pth'))

    @staticmethod
    def check(runner) -> int:
        """All-gather and compare; returns the number of buffers checked."""
        state = anchor_loss_buffers(runner.model)
        if dist.get_world_size() == 1:
            return len(state)
        mismatched = []
        for name, buf in state.items():
            gathered = dist.all_gather(buf.detach().to(torch.float64))
            if any(not torch.equal(gathered[0], other) for other in gathered):
                mismatched.append(name)
        if mismatched:
            raise RuntimeError('anchor-loss state differs between ranks at '
                               f'iteration {runner.iter}: {mismatched}')
        return len(state)

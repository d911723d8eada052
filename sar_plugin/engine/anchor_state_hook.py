"""Check that the anchor losses' state is the same on every rank."""
import os
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS
from torch import Tensor, nn

STATE_BUFFERS = ('anchors', 'centers', 'semantic_anchors', 'gate_open',
                 'num_updates', 'initialized')


def anchor_state(model: nn.Module) -> Dict[str, Tensor]:
    """Every buffer with a state name (``anchors``, ``centers``...) of the
    model, by its full name."""
    if is_model_wrapper(model):
        model = model.module
    return {
        name: buf
        for name, buf in model.named_buffers()
        if name.rsplit('.', 1)[-1] in STATE_BUFFERS
    }


@HOOKS.register_module()
class AnchorStateSyncCheckHook(Hook):
    """Verify that anchor-loss buffers are identical on all ranks.

    MMEngine wraps models with ``broadcast_buffers=False``, so the losses
    keep their state consistent themselves (seeded anchors, all-reduced
    updates). This hook checks it: every ``interval`` training iterations
    (and after training) it all-gathers each state buffer and raises if any
    rank differs from rank 0. With ``dump_dir`` every rank also saves its
    state to ``dump_dir/anchor_state_rank{r}.pth`` after training.

    Args:
        interval (int): Check every this many iterations.
        dump_dir (str, optional): Where to save each rank's final state.
    """
    priority = 'LOW'

    def __init__(self, interval: int = 1000,
                 dump_dir: Optional[str] = None) -> None:
        self.interval = interval
        self.dump_dir = dump_dir

    def check(self, runner) -> int:
        """All-gather and compare; returns the number of buffers checked."""
        state = anchor_state(runner.model)
        if dist.get_world_size() == 1:
            return len(state)
        mismatched = []
        for name, buf in state.items():
            gathered = dist.all_gather(buf.detach().to(torch.float64))
            if any(not torch.equal(gathered[0], other) for other in gathered):
                mismatched.append(name)
        if mismatched:
            raise RuntimeError(
                'anchor-loss state differs between ranks at iteration '
                f'{runner.iter}: {mismatched}')
        return len(state)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            n = self.check(runner)
            runner.logger.info(
                f'anchor state: {n} buffers identical on '
                f'{dist.get_world_size()} rank(s)')

    def after_train(self, runner) -> None:
        self.check(runner)
        if self.dump_dir is not None:
            os.makedirs(self.dump_dir, exist_ok=True)
            torch.save({k: v.cpu() for k, v in anchor_state(runner.model).items()},
                       osp.join(self.dump_dir,
                                f'anchor_state_rank{dist.get_rank()}.pth'))

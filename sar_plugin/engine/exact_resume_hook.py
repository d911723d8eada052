"""Exact resume: save and restore the random generators with checkpoints.

MMEngine 0.10.7 saves the model, optimizer, schedulers and message hub, but
not the random generators, so a resumed run draws different dropout masks
(and random augmentations, with ``num_workers=0``) than the run it
continues. Two more things stand between a checkpoint and the next training
step, and both move the generators:

- a validation run (at the same iteration as the save, after it) draws from
  the global torch generator when it creates its data-loader iterator;
- on resume, ``IterBasedTrainLoop`` advances the data loader over the
  iterations already trained (re-running the transforms of a
  ``num_workers=0`` loader in this process).

:class:`ExactResumeHook` handles all three: the checkpoint gets the
generator states at the end of its iteration; validation leaves the
generators as it found them; and on resume the states are restored right
after the loader has been advanced to the sampler position of the
checkpoint, just before the first new batch is fetched. With it, a run
interrupted at iteration k and resumed is bitwise identical to an
uninterrupted one in deterministic mode (test: ``tests/test_reliability.py``).

Distributed runs: MMEngine writes checkpoints on rank 0 only, so only rank
0's generators are saved; on resume every rank restores rank 0's states and
then mixes in its rank, which keeps ranks decorrelated but is not the
uninterrupted stream on ranks > 0.
"""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import HOOKS

from ..heads.sar_head import mark_runtime_hook

KEY = 'rng_state'


def capture_rng_state() -> Dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python generator states, as
    tensors and plain Python values (loadable with ``weights_only``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(kind=str(kind), keys=torch.from_numpy(keys.astype(
            np.int64)), pos=int(pos), has_gauss=int(has_gauss),
                   gauss=float(gauss)),
        python=_to_plain(random.getstate()))
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state['torch'])
    np_state = state['numpy']
    np.random.set_state((np_state['kind'],
                         np_state['keys'].numpy().astype(np.uint32),
                         np_state['pos'], np_state['has_gauss'],
                         np_state['gauss']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        cuda = state['cuda']
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.set_rng_state(cuda[0])


def _to_plain(python_state) -> list:
    version, internal, gauss = python_state
    return [version, list(internal), gauss]


class _RestoreAfter:
    """A data-loader iterator that restores the generators just before the
    batch after the first ``skip`` ones (those MMEngine's loop skips)."""

    def __init__(self, iterator, skip: int, state: Dict[str, Any]) -> None:
        self._iterator = iterator
        self._skip = skip
        self._state: Optional[Dict[str, Any]] = state
        self._count = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._state is not None and self._count >= self._skip:
            _restore_for_rank(self._state)
            self._state = None
        self._count += 1
        return next(self._iterator)

    def __getattr__(self, name: str):
        return getattr(self._iterator, name)


def _restore_for_rank(state: Dict[str, Any]) -> None:
    restore_rng_state(state)
    rank = dist.get_rank()
    if rank:  # rank 0's states were saved: keep the ranks apart
        seed = int(torch.randint(0, 2**31, (1, ))) + rank
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Exact resume: save the random generators (torch, CUDA, numpy, Python)
    in checkpoints and restore them on resume right after the data loader
    has skipped the iterations already trained (the sampler position).

    ``configs/_base_/sar_runtime.py`` lists it. It also makes validation
    neutral for the training stream (the generators are restored after
    every validation run), so ``val_interval`` does not change training.

    Args:
        isolate_val (bool): Restore the generators after validation.
            Default True; it is needed for exact resume when validation
            runs at a checkpoint's iteration.
    """

    priority = 'VERY_HIGH'

    def __init__(self, isolate_val: bool = True) -> None:
        self.isolate_val = isolate_val
        self._resumed: Optional[Dict[str, Any]] = None
        self._before_val: Optional[Dict[str, Any]] = None

    def before_run(self, runner) -> None:
        mark_runtime_hook(runner.model, 'ExactResumeHook')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[KEY] = capture_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning, testing): keep this run's seed
        if KEY not in checkpoint:
            print_log('The checkpoint has no random generator states (it was '
                      'written without ExactResumeHook): the resumed run '
                      'will not repeat the random draws of an uninterrupted '
                      'one.',
                      logger='current', level=30)
            return
        self._resumed = checkpoint[KEY]

    def before_train(self, runner) -> None:
        if self._resumed is None:
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreAfter(
                loop.dataloader_iterator, loop.iter, self._resumed)
        else:  # epoch-based: resumed at an epoch boundary, nothing skipped
            _restore_for_rank(self._resumed)
        self._resumed = None

    def before_val(self, runner) -> None:
        if self.isolate_val:
            self._before_val = capture_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_state(self._before_val)
            self._before_val = None

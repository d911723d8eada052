"""Resume a run whose model has other parameters than the checkpoint's.

Resuming a SAR config from a checkpoint of the plain model (or the other way
round) loads the model fine (the SARHead layout is mapped) but the
optimizer's state does not fit: its parameter groups have another size, and
PyTorch fails with "loaded state dict contains a parameter group that
doesn't match the size of optimizer's group". :class:`ResumeCheckHook`
detects this before MMEngine loads the optimizer, resets the optimizer's
state (the model, iteration, schedulers and message hub are still resumed)
and says why.
"""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapperDict
from mmseg.registry import HOOKS


def _group_sizes(optimizer_state: dict) -> list:
    return [len(g['params']) for g in optimizer_state.get('param_groups', [])]


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Reset the optimizer state on resume when its parameter groups do not
    fit the model (``tools/train.py`` adds it to every run)."""

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False) or \
                'optimizer' not in checkpoint:
            return
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, dict) or not hasattr(wrapper, 'state_dict'):
            return  # not built yet: MMEngine reports what it finds
        current = wrapper.state_dict()
        saved = checkpoint['optimizer']
        if isinstance(wrapper, OptimWrapperDict):
            pairs = [(name, _group_sizes(saved.get(name, {})),
                      _group_sizes(state))
                     for name, state in current.items()]
        else:
            pairs = [('optimizer', _group_sizes(saved),
                      _group_sizes(current))]
        differ = [(n, s, c) for n, s, c in pairs if s != c]
        if not differ:
            return
        name, saved_sizes, current_sizes = differ[0]
        print_log(
            f'Resuming the model, iteration and schedules, but the '
            f'{name} state is reset: its parameter groups differ (checkpoint '
            f'{saved_sizes} parameters per group, this model '
            f'{current_sizes}), e.g. a plain-model checkpoint resumed with a '
            'SAR config or the other way round. The learning-rate schedule '
            'continues; momentum/Adam statistics start afresh.',
            logger='current', level=30)
        checkpoint['optimizer'] = current

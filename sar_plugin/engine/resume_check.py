"""No resume of another model: what :class:`~.RunCheckHook` compares.

MMEngine resumes with ``strict=False``: a checkpoint of another architecture
(a cascade head resumed with a single-head config, a SAR checkpoint resumed
with the plain config...) leaves layers randomly initialised with a key
warning, and a changed optimizer layout was silently reset. Resuming means
continuing *the same run*, so :func:`check_resume` refuses it, naming the
entries that differ; ``load_from`` (without ``--resume``) is the way to
start a new run from another model's weights.
"""
from collections import OrderedDict
from typing import List

from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

_SHOWN = 8


def _group_sizes(optimizer_state: dict) -> list:
    return [len(g['params']) for g in optimizer_state.get('param_groups', [])]


def _listing(keys: List[str]) -> str:
    shown = ', '.join(keys[:_SHOWN])
    more = len(keys) - _SHOWN
    return shown + (f' and {more} more' if more > 0 else '')


def model_differences(model_state: dict, saved_state: dict) -> List[str]:
    """What differs between a model's state dict and a checkpoint's, one
    line per kind (missing, unexpected, other shapes); empty when they
    match."""
    saved = OrderedDict((k[len('module.'):] if k.startswith('module.') else k,
                         v) for k, v in saved_state.items())
    missing = [k for k in model_state if k not in saved]
    unexpected = [k for k in saved if k not in model_state]
    shapes = [
        f'{k} {tuple(saved[k].shape)} -> {tuple(v.shape)}'
        for k, v in model_state.items()
        if k in saved and hasattr(saved[k], 'shape')
        and hasattr(v, 'shape') and tuple(saved[k].shape) != tuple(v.shape)
    ]
    lines = []
    if missing:
        lines.append(f'{len(missing)} entries of this model are not in the '
                     f'checkpoint: {_listing(missing)}')
    if unexpected:
        lines.append(f'{len(unexpected)} entries of the checkpoint are not '
                     f'in this model: {_listing(unexpected)}')
    if shapes:
        lines.append(f'{len(shapes)} entries have other shapes (checkpoint '
                     f'-> model): {_listing(shapes)}')
    return lines


def optimizer_differences(runner, checkpoint: dict) -> List[str]:
    """The optimizers whose parameter groups differ from the checkpoint's,
    one line each; empty when the wrapper is not built yet."""
    wrapper = runner.optim_wrapper
    if 'optimizer' not in checkpoint or isinstance(wrapper, dict) or \
            not hasattr(wrapper, 'state_dict'):
        return []  # not built yet: MMEngine reports what it finds
    current, saved = wrapper.state_dict(), checkpoint['optimizer']
    if isinstance(wrapper, OptimWrapperDict):
        pairs = [(name, _group_sizes(saved.get(name, {})),
                  _group_sizes(state)) for name, state in current.items()]
    else:
        pairs = [('optimizer', _group_sizes(saved), _group_sizes(current))]
    return [f'the {name} has other parameter groups (checkpoint {s} '
            f'parameters per group, this run {c})'
            for name, s, c in pairs if s != c]


def drop_meta_config(checkpoint: dict) -> None:
    """Remove ``meta['config']``: MMEngine's resume runs it through
    ``Config.fromstring``, i.e. executes text from the file."""
    meta = checkpoint.get('meta')
    if isinstance(meta, dict):
        meta.pop('config', None)


def check_resume(runner, checkpoint: dict) -> None:
    """On resume (``runner._resume``), refuse a checkpoint whose model
    entries or optimizer parameter groups differ from this run's.

    Raises:
        RuntimeError: Naming the differences and pointing at ``load_from``.
    """
    if not getattr(runner, '_resume', False):
        return
    source = getattr(runner, '_load_from', None) or 'the checkpoint'
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    saved = checkpoint.get('state_dict')
    lines = model_differences(model.state_dict(), saved) \
        if isinstance(saved, dict) else []
    lines += optimizer_differences(runner, checkpoint)
    if lines:
        raise RuntimeError(
            f'Cannot resume from {source}: it holds another model than '
            'this config builds (resuming continues the same run).\n  '
            + '\n  '.join(lines) + '\nTo start a new run from its '
            'weights, pass it as load_from (e.g. --cfg-options '
            f'load_from={source}) without --resume.')

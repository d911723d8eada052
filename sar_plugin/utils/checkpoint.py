"""Loading MMEngine runner checkpoints with torch >= 2.6.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and MMEngine
0.10.7 calls it without that argument. Runner checkpoints hold more than
tensors (the message hub's ``HistoryBuffer`` and numpy arrays, scalars and
dtypes), so ``--resume`` and ``load_from`` fail. Instead of turning the check
off, the few types MMEngine stores are added to torch's allow-list.

One more thing stands in the way: ``HistoryBuffer.__getstate__`` stores the
class' statistics *functions* (``HistoryBuffer.min``...), which pickle as
``getattr(HistoryBuffer, 'min')``; allowing ``getattr`` would open the
unpickler to arbitrary attribute look-ups. Those functions are class-level
registrations that ``__setstate__`` restores anyway, so checkpoints written
with sar_plugin imported leave them out. Checkpoints written by plain MMEngine
still need ``weights_only=False``, which this module never sets.
"""
from typing import List

import numpy as np
import torch


def _numpy_globals() -> List:
    found = [np.ndarray, np.dtype]
    for module_name in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct'])
            found.append(module._reconstruct)
            found.append(module.scalar)
        except (ImportError, AttributeError):
            continue
    # numpy >= 1.25 pickles dtypes by their class, e.g. numpy.dtypes.Float64DType
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found.extend(
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType'))
    return found


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the statistics functions."""
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def allow_mmengine_checkpoints() -> bool:
    """Allow-list what MMEngine runner checkpoints contain.

    Returns:
        bool: False when this torch has no ``add_safe_globals`` (< 2.4),
        where nothing needs to be done.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    add([HistoryBuffer] + _numpy_globals())
    return True

"""Loading MMEngine runner checkpoints with torch >= 2.6.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and MMEngine
0.10.7 calls it without that argument. Runner checkpoints hold more than
tensors (the message hub's ``HistoryBuffer`` and numpy arrays, scalars and
dtypes), so ``--resume`` and ``load_from`` fail. Instead of turning the check
off, the few types MMEngine stores are added to torch's allow-list.

Two more things stand in the way:

- Stock ``HistoryBuffer.__getstate__`` stores the class' statistics
  *functions* (``HistoryBuffer.min``...). Pickle protocol 2 (torch's
  default) writes a method-like qualname as ``getattr(HistoryBuffer,
  'min')``, i.e. GLOBAL ``builtins.getattr`` then REDUCE. Allowing the real
  ``getattr`` would open the unpickler to arbitrary attribute look-ups, so the
  name ``builtins.getattr`` is mapped (torch >= 2.6 accepts ``(obj, name)``
  pairs) to :func:`history_buffer_statistic`, which returns only
  ``HistoryBuffer``'s own default statistics and refuses anything else.
  Checkpoints written with sar_plugin imported leave the functions out
  (:func:`_history_buffer_getstate`); those written by plain MMEngine load too.
- Stock ``HistoryBuffer.__setstate__`` merges whatever the checkpoint holds
  into the *class-level* ``_statistics_methods`` dict (process-wide: every
  buffer's ``mean`` could be replaced) and into the instance ``__dict__``.
  :func:`_history_buffer_setstate` accepts only the buffer's own fields, with
  checked types, and never writes to the class.

``weights_only=False`` is never set.
"""
from typing import Any, Callable, Dict, List, NoReturn

import numpy as np
import torch
from torch.torch_version import TorchVersion

#: The statistics ``HistoryBuffer._set_default_statistics`` registers.
DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')

_HISTORY_FIELDS = ('max_length', '_log_history', '_count_history')
_STATISTICS_KEY = 'statistics_methods'


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds state that the allow-list refuses.

    A ``ValueError``, not a ``pickle.UnpicklingError``: torch re-words the
    latter into advice to retry with ``weights_only=False``, which is exactly
    what must not be done with such a file.
    """


def _numpy_globals() -> List:
    found = [np.ndarray, np.dtype]
    for module_name in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct'])
            found.append(module._reconstruct)
            found.append(module.scalar)
        except (ImportError, AttributeError):
            continue
    # numpy >= 1.25 pickles dtypes by their class, e.g.
    # numpy.dtypes.Float64DType
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found.extend(
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType'))
    return found


def _history_buffer_class() -> type:
    from mmengine.logging import HistoryBuffer
    return HistoryBuffer


def history_buffer_statistic(owner: Any, name: Any) -> Callable:
    """``getattr(HistoryBuffer, name)`` for a default statistic, else refuse.

    Stands in for ``builtins.getattr`` in torch's ``weights_only``
    unpickler, where stock MMEngine checkpoints call it to rebuild
    ``HistoryBuffer.min`` / ``max`` / ``current`` / ``mean``.

    Args:
        owner: Must be ``HistoryBuffer`` itself.
        name: One of :data:`DEFAULT_STATISTICS`.

    Returns:
        Callable: The function ``HistoryBuffer.<name>``.

    Raises:
        UnsafeCheckpointError: Any other look-up.
    """
    history_buffer = _history_buffer_class()
    if owner is not history_buffer or name not in DEFAULT_STATISTICS:
        owner_name = getattr(owner, '__qualname__', type(owner).__qualname__)
        raise UnsafeCheckpointError(
            f'checkpoint refused: it calls getattr({owner_name}, {name!r}); '
            'only getattr(HistoryBuffer, <name>) for the statistics '
            f'{DEFAULT_STATISTICS} is allowed (what MMEngine writes)')
    return vars(history_buffer)[name]


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the statistics functions."""
    state = dict(self.__dict__)
    state.pop(_STATISTICS_KEY, None)
    return state


def _refuse(reason: str) -> NoReturn:
    raise UnsafeCheckpointError(
        f'HistoryBuffer state refused (checkpoint message_hub): {reason}')


def _checked_max_length(value: Any) -> int:
    if (isinstance(value, bool)
            or not isinstance(value, (int, np.integer)) or value < 1):
        _refuse(f'max_length must be an int >= 1, got {value!r}')
    return int(value)


def _checked_history(key: str, value: Any) -> np.ndarray:
    if (type(value) is not np.ndarray or value.ndim != 1
            or not np.issubdtype(value.dtype, np.number)):
        desc = (f'{value.ndim}-D {value.dtype} array' if isinstance(
            value, np.ndarray) else type(value).__name__)
        _refuse(f'{key} must be a 1-D numpy array of numbers, got {desc}')
    return value


def _check_statistics(methods: Any, registered: Dict[str, Callable]) -> None:
    """A stock ``statistics_methods`` entry: registered names -> functions."""
    if not isinstance(methods, dict):
        _refuse(f'{_STATISTICS_KEY} must be a dict, got '
                f'{type(methods).__name__}')
    for name, method in methods.items():
        if not isinstance(name, str) or registered.get(name) is not method:
            _refuse(f'{_STATISTICS_KEY}[{name!r}] is not the statistic '
                    'registered in this process under that name; a '
                    'checkpoint may not register or replace statistics')


def _history_buffer_setstate(self, state: Any) -> None:
    """``HistoryBuffer.__setstate__`` accepting only the buffer's own fields.

    ``state`` must hold ``max_length`` (an int >= 1) and ``_log_history`` /
    ``_count_history`` (1-D numeric numpy arrays of one length), and may hold
    ``statistics_methods`` as written by stock MMEngine: a dict mapping
    registered statistic names to exactly the registered functions. That
    entry is checked, then dropped: registrations are class-level and are
    never taken from a checkpoint.

    Raises:
        UnsafeCheckpointError: Anything else in ``state``.
    """
    if not isinstance(state, dict):
        _refuse(f'expected a dict, got {type(state).__name__}')
    unknown = set(state) - set(_HISTORY_FIELDS) - {_STATISTICS_KEY}
    if unknown:
        _refuse(f'unexpected field(s) {sorted(map(repr, unknown))}; only '
                f'{_HISTORY_FIELDS} and {_STATISTICS_KEY!r} are allowed')
    missing = [key for key in _HISTORY_FIELDS if key not in state]
    if missing:
        _refuse(f'missing field(s) {missing}')
    # the defaults, as HistoryBuffer.__init__ registers them (idempotent)
    self._set_default_statistics()
    if _STATISTICS_KEY in state:
        _check_statistics(state[_STATISTICS_KEY],
                          type(self)._statistics_methods)
    clean = dict(
        max_length=_checked_max_length(state['max_length']),
        _log_history=_checked_history('_log_history', state['_log_history']),
        _count_history=_checked_history('_count_history',
                                        state['_count_history']))
    if len(clean['_log_history']) != len(clean['_count_history']):
        _refuse('_log_history and _count_history differ in length '
                f'({len(clean["_log_history"])} vs '
                f'{len(clean["_count_history"])})')
    self.__dict__.update(clean)


def _patch_history_buffer() -> type:
    """Install the safe ``__getstate__`` / ``__setstate__``; return the
    class."""
    history_buffer = _history_buffer_class()
    history_buffer.__getstate__ = _history_buffer_getstate
    history_buffer.__setstate__ = _history_buffer_setstate
    return history_buffer


def allow_mmengine_checkpoints() -> bool:
    """Allow-list what MMEngine runner checkpoints contain.

    Always makes ``HistoryBuffer`` pickling safe (see the module
    docstring). With torch >= 2.4, allow-lists ``HistoryBuffer`` and the
    numpy types; with torch >= 2.6 (where ``weights_only=True`` is the
    default and ``(obj, name)`` pairs are accepted), also maps
    ``builtins.getattr`` to :func:`history_buffer_statistic` so stock
    MMEngine checkpoints load.

    Returns:
        bool: False when this torch has no ``add_safe_globals`` (< 2.4),
        where nothing needs to be allow-listed.
    """
    history_buffer = _patch_history_buffer()
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    allowed: List[Any] = [history_buffer] + _numpy_globals()
    if TorchVersion(torch.__version__) >= (2, 6):
        allowed.append((history_buffer_statistic, 'builtins.getattr'))
    add(allowed)
    return True

"""Loading MMEngine runner checkpoints with torch's ``weights_only=True``.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and MMEngine
0.10.7 calls it without that argument. Runner checkpoints hold more than
tensors (the message hub's ``HistoryBuffer`` and numpy arrays, scalars and
dtypes), so ``--resume`` and ``load_from`` fail. Instead of turning the check
off, the few types MMEngine stores are allow-listed
(:func:`safe_checkpoint_globals`):

- only inside a ``with`` block: :func:`safe_loading`;
- for the whole process, opt-in: :func:`enable_safe_loading` (the plug-in's
  tools and its config hook call it before the runner loads a checkpoint);
- :func:`load_checkpoint_file` loads one file with ``weights_only=True``
  passed explicitly, inside :func:`safe_loading`.

``import sar_plugin`` changes nothing of torch's or MMEngine's: no entry is
added to torch's allow-list and ``HistoryBuffer`` is not modified.

Two things in a stock MMEngine checkpoint need more than a plain
allow-list entry:

- ``HistoryBuffer.__getstate__`` stores the class' statistics *functions*
  (``HistoryBuffer.min``...). Pickle protocol 2 (torch's default) writes a
  method-like qualname as ``getattr(HistoryBuffer, 'min')``, i.e. GLOBAL
  ``builtins.getattr`` then REDUCE. Allowing the real ``getattr`` would open
  the unpickler to arbitrary attribute look-ups, so the name
  ``builtins.getattr`` is mapped (torch >= 2.6 accepts ``(obj, name)``
  pairs) to :func:`history_buffer_statistic`, which returns only
  ``HistoryBuffer``'s own default statistics and refuses anything else.
- ``HistoryBuffer.__setstate__`` merges whatever the checkpoint holds into
  the *class-level* ``_statistics_methods`` dict (process-wide: every
  buffer's ``mean`` could be replaced) and into the instance ``__dict__``.
  So ``HistoryBuffer`` itself is never allow-listed: its pickled name
  ``mmengine.logging.history_buffer.HistoryBuffer`` is mapped to the
  subclass :class:`CheckedHistoryBuffer`, whose ``__setstate__`` accepts
  only the buffer's own fields, with checked types, never writes to the
  class, and then turns the object into a plain ``HistoryBuffer``. Loaded
  buffers are stock MMEngine objects: a checkpoint saved from them again is
  a stock checkpoint, loadable without sar_plugin.

``weights_only=False`` is never set. On torch < 2.6 (no ``(obj, name)``
pairs) only the numpy types are allow-listed: state-dict checkpoints load
with :func:`load_checkpoint_file`, runner checkpoints with a message hub are
refused (MMEngine's own loading there is ``weights_only=False`` by torch's
default).
"""
import copyreg
import functools
import io
import os
import pickle
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from torch.torch_version import TorchVersion

#: The statistics ``HistoryBuffer._set_default_statistics`` registers.
DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')

#: The name pickle writes for ``HistoryBuffer`` (its module and qualname).
HISTORY_BUFFER_NAME = 'mmengine.logging.history_buffer.HistoryBuffer'
#: The name protocol-2 pickles use for ``getattr(HistoryBuffer, 'min')``.
GETATTR_NAME = 'builtins.getattr'

#: The environment variable that turns torch's default ``weights_only`` off.
FORCE_NO_WEIGHTS_ONLY = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'

_HISTORY_FIELDS = ('max_length', '_log_history', '_count_history')
_STATISTICS_KEY = 'statistics_methods'
_TRUE_VALUES = ('1', 'y', 'yes', 'true')

# enable_safe_loading() calls: one inside a safe_loading() block stays
_enabled_calls = 0


class CheckpointLoadError(Exception):
    """A file :func:`load_checkpoint_file` cannot load; the message names
    it and says why."""


class UnsafeCheckpointError(CheckpointLoadError, ValueError):
    """A checkpoint holds state that the allow-list refuses.

    A ``ValueError``, not a ``pickle.UnpicklingError``: torch re-words the
    latter into advice to retry with ``weights_only=False``, which is exactly
    what must not be done with such a file; torch passes a ``ValueError``
    through unchanged.
    """


def _supports_named_globals() -> bool:
    """torch >= 2.6: allow-list entries may be ``(obj, 'module.name')``."""
    return TorchVersion(torch.__version__) >= (2, 6)


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
    # unique, in order (numpy.core re-exports numpy._core's functions)
    return list({id(obj): obj for obj in found}.values())


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


class CheckedHistoryBuffer(HistoryBuffer):
    """What torch's ``weights_only`` unpickler builds for a pickled
    ``HistoryBuffer`` (allow-listed under ``HistoryBuffer``'s name by
    :func:`safe_checkpoint_globals`); never constructed otherwise.

    The unpickler creates it with ``__new__`` (pickle's NEWOBJ, no
    arguments) and fills it with :meth:`__setstate__` (BUILD), which checks
    the state and then makes the object a plain ``HistoryBuffer``: what a
    load returns, and what a later ``torch.save`` writes, is stock
    MMEngine. A second BUILD of the same object is refused by torch, as
    ``HistoryBuffer`` itself is not allow-listed.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> 'CheckedHistoryBuffer':
        if args or kwargs:
            raise UnsafeCheckpointError(
                'checkpoint refused: it creates a HistoryBuffer with '
                f'{len(args) + len(kwargs)} argument(s); MMEngine pickles '
                'one without arguments, then sets its state')
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # MMEngine's pickles never call the class; a crafted REDUCE would
        raise UnsafeCheckpointError(
            'checkpoint refused: it calls HistoryBuffer(); MMEngine pickles '
            'a HistoryBuffer by its state')

    def __reduce_ex__(self, protocol: Any) -> tuple:
        # an object no BUILD reached still pickles as MMEngine's class
        return copyreg.__newobj__, (HistoryBuffer, ), dict(self.__dict__)

    def __setstate__(self, state: Any) -> None:
        """Accept only the buffer's own fields, then become a
        ``HistoryBuffer``.

        ``state`` must hold ``max_length`` (an int >= 1) and
        ``_log_history`` / ``_count_history`` (1-D numeric numpy arrays of
        one length), and may hold ``statistics_methods`` as written by stock
        MMEngine: a dict mapping registered statistic names to exactly the
        registered functions. That entry is checked, then dropped:
        registrations are class-level and are never taken from a checkpoint.

        Raises:
            UnsafeCheckpointError: Anything else in ``state``.
        """
        if not isinstance(state, dict):
            _refuse(f'expected a dict, got {type(state).__name__}')
        unknown = set(state) - set(_HISTORY_FIELDS) - {_STATISTICS_KEY}
        if unknown:
            _refuse(f'unexpected field(s) {sorted(map(repr, unknown))}; '
                    f'only {_HISTORY_FIELDS} and {_STATISTICS_KEY!r} are '
                    'allowed')
        missing = [key for key in _HISTORY_FIELDS if key not in state]
        if missing:
            _refuse(f'missing field(s) {missing}')
        # the defaults, as HistoryBuffer.__init__ registers them (idempotent)
        self._set_default_statistics()
        if _STATISTICS_KEY in state:
            _check_statistics(state[_STATISTICS_KEY],
                              HistoryBuffer._statistics_methods)
        clean = dict(
            max_length=_checked_max_length(state['max_length']),
            _log_history=_checked_history('_log_history',
                                          state['_log_history']),
            _count_history=_checked_history('_count_history',
                                            state['_count_history']))
        if len(clean['_log_history']) != len(clean['_count_history']):
            _refuse('_log_history and _count_history differ in length '
                    f'({len(clean["_log_history"])} vs '
                    f'{len(clean["_count_history"])})')
        self.__dict__.update(clean)
        self.__class__ = HistoryBuffer


def history_buffer_statistic(owner: Any, name: Any) -> Callable:
    """``getattr(HistoryBuffer, name)`` for a default statistic, else refuse.

    Stands in for ``builtins.getattr`` in torch's ``weights_only``
    unpickler, where stock MMEngine checkpoints call it to rebuild
    ``HistoryBuffer.min`` / ``max`` / ``current`` / ``mean``.

    Args:
        owner: ``HistoryBuffer`` as the allow-list resolves its name
            (:class:`CheckedHistoryBuffer`), or ``HistoryBuffer`` itself.
        name: One of :data:`DEFAULT_STATISTICS`.

    Returns:
        Callable: The function ``HistoryBuffer.<name>``.

    Raises:
        UnsafeCheckpointError: Any other look-up.
    """
    if (owner is not CheckedHistoryBuffer and owner is not HistoryBuffer) \
            or not isinstance(name, str) or name not in DEFAULT_STATISTICS:
        owner_name = getattr(owner, '__qualname__', type(owner).__qualname__)
        if owner is CheckedHistoryBuffer:
            owner_name = 'HistoryBuffer'
        raise UnsafeCheckpointError(
            f'checkpoint refused: it calls getattr({owner_name}, {name!r}); '
            'only getattr(HistoryBuffer, <name>) for the statistics '
            f'{DEFAULT_STATISTICS} is allowed (what MMEngine writes)')
    return vars(HistoryBuffer)[name]


def safe_checkpoint_globals() -> List[Union[Callable, tuple]]:
    """The allow-list entries for MMEngine runner checkpoints.

    Returns:
        list: The numpy types (arrays, scalars, dtypes); with torch >= 2.6
        also ``(CheckedHistoryBuffer, HISTORY_BUFFER_NAME)`` and
        ``(history_buffer_statistic, 'builtins.getattr')``. A new list on
        every call.
    """
    return list(_safe_checkpoint_globals())


@functools.lru_cache(maxsize=1)
def _safe_checkpoint_globals() -> tuple:
    entries: List[Any] = _numpy_globals()
    if _supports_named_globals():
        entries += [(CheckedHistoryBuffer, HISTORY_BUFFER_NAME),
                    (history_buffer_statistic, GETATTR_NAME)]
    return tuple(entries)


def _entry_name(entry: Any) -> Any:
    """The pickled name an allow-list entry stands for (as torch reads it)."""
    if isinstance(entry, tuple):
        return entry[1] if len(entry) == 2 else None
    module = getattr(entry, '__module__', None)
    qualname = getattr(entry, '__qualname__', None)
    return f'{module}.{qualname}' if module and qualname else None


def _check_no_conflict(current: List[Any], entries: List[Any]) -> None:
    """Refuse when torch's list already maps one of the names that
    :func:`safe_checkpoint_globals` maps (``HistoryBuffer``, ``getattr``)
    to something else: which one torch would use is undefined."""
    ours = {_entry_name(e): e for e in entries if isinstance(e, tuple)}
    for entry in current:
        name = _entry_name(entry)
        if name in ours and entry not in entries:
            raise RuntimeError(
                f'torch.serialization\'s allow-list already maps {name} to '
                f'{entry!r}; sar_plugin maps it to {ours[name][0]!r} (see '
                'sar_plugin.utils.checkpoint). Remove that entry '
                '(torch.serialization.clear_safe_globals) to load MMEngine '
                'checkpoints safely.')


@contextmanager
def safe_loading() -> Iterator[None]:
    """Allow-list :func:`safe_checkpoint_globals` inside the ``with`` only.

    Uses torch's ``torch.serialization.safe_globals`` context manager
    (torch >= 2.5; elsewhere this is a no-op). Only the entries that are
    not in torch's list already are added, and exactly those are removed on
    exit, also when the block raises: torch's list is as it was. An
    :func:`enable_safe_loading` inside the block stays in effect.

    Example:
        >>> with safe_loading():
        ...     ckpt = torch.load(path, weights_only=True)

    Raises:
        RuntimeError: torch's list maps ``HistoryBuffer``'s or ``getattr``'s
            pickled name to another object.
    """
    context = getattr(torch.serialization, 'safe_globals', None)
    if context is None:
        yield
        return
    entries = safe_checkpoint_globals()
    current = torch.serialization.get_safe_globals()
    _check_no_conflict(current, entries)
    added = [entry for entry in entries if entry not in current]
    calls = _enabled_calls
    try:
        with context(added):
            yield
    finally:
        if _enabled_calls != calls:  # enable_safe_loading() in the block
            torch.serialization.add_safe_globals(entries)


def enable_safe_loading() -> bool:
    """Allow-list :func:`safe_checkpoint_globals` for the whole process.

    Opt-in and idempotent. Importing sar_plugin never calls it; the
    plug-in's tools (``tools/train.py``, ``tools/test.py`` through
    :func:`~sar_plugin.utils.runtime.prepare_config`) and its config hook
    (``RunCheckHook``, ``before_run``) do, before the runner loads a
    checkpoint, so MMEngine's ``--resume`` / ``load_from`` (which call
    ``torch.load`` without ``weights_only``, i.e. torch's default) load
    runner checkpoints. With ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` torch
    loads those with full pickle instead (the user's choice);
    :func:`load_checkpoint_file` is not affected.

    Returns:
        bool: False when this torch has no ``add_safe_globals`` (< 2.4,
        where ``weights_only`` is not the default); True otherwise.

    Raises:
        RuntimeError: torch's list maps ``HistoryBuffer``'s or ``getattr``'s
            pickled name to another object.
    """
    global _enabled_calls
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    entries = safe_checkpoint_globals()
    _check_no_conflict(torch.serialization.get_safe_globals(), entries)
    add(entries)
    _enabled_calls += 1
    return True


def _flag_set(name: str) -> bool:
    return os.environ.get(name, '0').lower() in _TRUE_VALUES


def _explicit_weights_only_ignored() -> bool:
    """Whether this torch, in this environment, unpickles with full pickle
    although ``weights_only=True`` is passed (torch 2.6 to 2.13 never do).
    Probed by behaviour with a pickle that only names a harmless class (no
    call): full pickle returns it, the weights-only unpickler refuses it."""
    buf = io.BytesIO()
    torch.save({'probe': pickle.PickleBuffer}, buf)
    buf.seek(0)
    try:
        torch.load(buf, weights_only=True)
    except Exception:  # refused: weights_only is honoured
        return False
    return True


def check_weights_only_enforced(source: str = 'checkpoint') -> None:
    """Raise when ``weights_only=True`` would not be honoured by torch.

    torch 2.13 applies ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` only to calls
    that do not pass ``weights_only``; should a torch apply it to explicit
    ``weights_only=True`` as well (probed by behaviour on every call while
    the variable is set), this refuses instead of unpickling ``source``
    with full pickle.

    Raises:
        CheckpointLoadError: Naming ``source`` and the variable.
    """
    if _flag_set(FORCE_NO_WEIGHTS_ONLY) and _explicit_weights_only_ignored():
        raise CheckpointLoadError(
            f'{source}: refusing to load: {FORCE_NO_WEIGHTS_ONLY} is set and '
            f'this torch ({torch.__version__}) then ignores '
            'weights_only=True, so the file would be unpickled with full '
            'pickle (arbitrary code). Unset it.')


_TORCH_ADVICE = ('(1)', '(2)', 'Please file an issue',
                 'Check the documentation')


def load_error_reason(exc: BaseException) -> str:
    """The informative line of a ``torch.load`` error: for weights-only
    failures, what the unpickler refused, without torch's advice to load
    with ``weights_only=False`` or to allow-list the global."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith('Weights only load failed'):
        for line in lines:
            if line.startswith('WeightsUnpickler error'):
                return line.split(' Please use `torch.serialization', 1)[0]
        rest = [line for line in lines[1:]
                if not line.startswith(_TORCH_ADVICE)]
        return 'WeightsUnpickler error: ' + (rest[0] if rest else lines[0])
    return f'{type(exc).__name__}: {lines[0] if lines else exc!r}'


def load_checkpoint_file(path: Union[str, os.PathLike],
                         map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` inside :func:`safe_loading`.

    ``weights_only=True`` is passed explicitly, so torch's
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (which only changes the default)
    cannot turn the check off (:func:`check_weights_only_enforced`).
    Loaded ``HistoryBuffer`` s are plain MMEngine ``HistoryBuffer`` s.

    Args:
        path (str | PathLike): A local checkpoint file.
        map_location: As for ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        The loaded object (for a runner checkpoint, its dict).

    Raises:
        UnsafeCheckpointError: The checkpoint holds state the allow-list
            refuses (a ``ValueError``; the message names the file).
        CheckpointLoadError: Any other failure: no such file, not a
            checkpoint, a global torch's weights-only unpickler refuses,
            ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` not honoured (named).
    """
    path = os.fspath(path)
    check_weights_only_enforced(path)
    if not os.path.isfile(path):
        raise CheckpointLoadError(
            f'{path}: no such file' if not os.path.exists(path) else
            f'{path}: not a file')
    try:
        with safe_loading():
            return torch.load(
                path, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f'{path}: {exc}') from exc
    except Exception as exc:  # torch raises many types for foreign files
        raise CheckpointLoadError(
            f'{path}: torch.load(weights_only=True) cannot load it: '
            f'{load_error_reason(exc)}') from exc

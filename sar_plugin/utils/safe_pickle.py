"""Restricted unpickling of data files (the CIFAR python archives).

``pickle.load`` runs whatever a file tells it to: a crafted ``data_batch_1``
can call ``os.system``. :func:`safe_load` reads pickles with an unpickler
whose ``find_class`` resolves only the globals that CIFAR-format files need:

- numpy arrays: ``_reconstruct`` (``numpy.core.multiarray``, as written by
  numpy 1.x and the official Python 2 archives, or ``numpy._core.multiarray``,
  numpy >= 2), ``numpy.ndarray`` and ``numpy.dtype``; ``_frombuffer``
  (``numpy[._]core.numeric``) for protocol-5 pickles of arrays;
- ``bytes`` written by Python 3 with protocol < 3, which pickles them as
  ``_codecs.encode(text, 'latin1')`` (and ``b''`` as ``bytes()``): both are
  replaced by functions that accept only exactly those calls.

Plain containers, strings and numbers need no global at all. Any other global
raises :class:`UnsafePickleError`, naming the file and the refused
``module.name``, before anything from it is called.
"""
import _compat_pickle
import os
import pickle
from typing import IO, Any, Callable, Dict, NoReturn, Tuple, Union

import numpy as np

PathOrFile = Union[str, os.PathLike, IO[bytes]]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside :func:`safe_load`'s allow-list.

    Attributes:
        source (str): The file (or stream name) being read.
        global_name (str): The refused ``module.name``.
    """

    def __init__(self, message: str, source: str, global_name: str) -> None:
        super().__init__(message)
        self.source = source
        self.global_name = global_name


def _numpy_reconstruct() -> Callable:
    """numpy's array rebuild function, as its own pickles reference it."""
    return np.empty(0).__reduce__()[0]


def _numpy_frombuffer() -> Callable:
    """numpy's protocol-5 array rebuild function (``_frombuffer``)."""
    return np.empty(1).__reduce_ex__(5)[0]


def _allowed_numpy_globals() -> Dict[Tuple[str, str], Any]:
    """``(module, name) -> object`` for the numpy globals of array pickles.

    Both spellings of the ``_reconstruct`` module map to this numpy's
    function, so old pickles load without importing the deprecated
    ``numpy.core`` alias.
    """
    reconstruct = _numpy_reconstruct()
    return {
        ('numpy.core.multiarray', '_reconstruct'): reconstruct,
        ('numpy._core.multiarray', '_reconstruct'): reconstruct,
        # pickle protocol 5 (numpy >= 1.16): the array from its in-band
        # buffer
        ('numpy.core.numeric', '_frombuffer'): _numpy_frombuffer(),
        ('numpy._core.numeric', '_frombuffer'): _numpy_frombuffer(),
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
    }


def _python3_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 spells it (protocol < 3 pickles use
    Python 2 names, e.g. ``__builtin__.exec``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f'{module}.{name}'


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler resolving only the allow-listed globals.

    Args:
        file (IO[bytes]): The open binary file.
        source (str): Its name, for error messages.
        what (str): What the file is, for error messages.
        encoding (str): How to decode Python 2 ``str`` objects.
    """

    def __init__(self, file: IO[bytes], source: str, what: str,
                 encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._source = source
        self._what = what
        self._allowed = _allowed_numpy_globals()
        self._allowed[('_codecs', 'encode')] = self._latin1_bytes
        # protocol < 3 writes builtins as __builtin__
        self._allowed[('__builtin__', 'bytes')] = self._empty_bytes
        self._allowed[('builtins', 'bytes')] = self._empty_bytes

    def find_class(self, module: str, name: str) -> Any:
        """Return the allow-listed object for ``module.name``, else raise.

        Raises:
            UnsafePickleError: ``module.name`` is not allow-listed.
        """
        try:
            return self._allowed[(module, name)]
        except KeyError:
            pass
        full = _python3_name(module, name)
        raise UnsafePickleError(
            f'{self._source}: refusing to load this {self._what}: it '
            f'references the global {full!r}, which is not allowed (only '
            'numpy arrays and plain Python data are). The file is corrupt or '
            'was crafted to run code; replace it with the official one.',
            self._source, full)

    def _refuse_call(self, call: str) -> NoReturn:
        raise UnsafePickleError(
            f'{self._source}: refusing to load this {self._what}: it calls '
            f'{call}, which is not how Python pickles bytes. The file is '
            'corrupt or was crafted; replace it with the official one.',
            self._source, call.split('(')[0])

    def _latin1_bytes(self, text: str, encoding: str) -> bytes:
        """``_codecs.encode(text, 'latin1')``, the only call allowed."""
        if type(text) is not str or encoding not in ('latin1', 'latin-1'):
            self._refuse_call(f'_codecs.encode({type(text).__name__}, '
                              f'{encoding!r})')
        return text.encode('latin1')

    def _empty_bytes(self, *args: Any) -> bytes:
        """``bytes()``, the only call allowed (``b''`` in protocol < 3)."""
        if args:
            self._refuse_call(f'bytes() with {len(args)} argument(s)')
        return b''


def _source_name(file: PathOrFile) -> str:
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    return str(getattr(file, 'name', '<stream>'))


def safe_load(file_or_path: PathOrFile,
              encoding: str = 'bytes',
              what: str = 'CIFAR archive') -> Any:
    """``pickle.load`` restricted to numpy arrays and plain Python data.

    Args:
        file_or_path (str | os.PathLike | IO[bytes]): A path, or a binary
            file open for reading.
        encoding (str): How to decode Python 2 ``str`` objects; ``'bytes'``
            (the default) keeps them as ``bytes``, as the official CIFAR
            archives need.
        what (str): What the file is, for error messages.

    Returns:
        Any: The unpickled object.

    Raises:
        UnsafePickleError: The pickle references a global other than those
            listed in this module's docstring.
        pickle.UnpicklingError: The file is not a valid pickle (truncated,
            corrupt); the message names the file.
    """
    source = _source_name(file_or_path)
    if isinstance(file_or_path, (str, os.PathLike)):
        with open(file_or_path, 'rb') as f:
            return _load(f, source, what, encoding)
    return _load(file_or_path, source, what, encoding)


def _load(file: IO[bytes], source: str, what: str, encoding: str) -> Any:
    try:
        return _RestrictedUnpickler(file, source, what, encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as e:
        raise pickle.UnpicklingError(
            f'{source}: cannot read this {what}, it is not a valid pickle '
            f'({type(e).__name__}: {e})') from e

"""Argument checks shared by every loss (and the heads that build them).

One way to check every constructor argument of every loss, so that a
config with a wrongly typed value (``loss_weight='1.0'``, ``momentum=None``,
``class_weight='balanced'``) fails at build time with a message naming the
loss and the field, never with Python's own ('<' not supported between
...). A value of the wrong type raises ``TypeError``, one of the right type
but out of range ``ValueError``; both read
``{owner}: `{name}` must be {expected}, got {value!r}`` (plus the type's
name for a ``TypeError``). Torch and numpy only.
"""
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any, List, NoReturn, Optional, Sequence, Union

import numpy as np
import torch


_BOUNDS = re.compile(r'^\s*(?:(?P<op>>=|>|<=|<)\s*(?P<lim>\S+)|'
                     r'(?P<lo_br>[\[(])\s*(?P<lo>[^,\s]+)\s*,\s*'
                     r'(?P<hi>[^\]\)\s]+)\s*(?P<hi_br>[\])]))\s*$')


def _type_name(value: Any) -> str:
    return type(value).__name__


def _fail(owner: str, name: str, value: Any, expected: str,
          error: type = ValueError, note: str = '') -> NoReturn:
    got = f'{value!r} ({_type_name(value)})' if error is TypeError \
        else repr(value)
    raise error(f'{owner}: `{name}` must be {expected}, got {got}{note}')


def is_number(value: Any, integer: bool = False) -> bool:
    """A real number (an integer with ``integer``): Python's or numpy's, not
    a bool (a subclass of int), a string or a tensor."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, numbers.Integral if integer else numbers.Real)


def _bound(text: str) -> Union[int, float]:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _in_bounds(value: Union[int, float], bounds: str) -> bool:
    match = _BOUNDS.match(bounds)
    if match is None:
        raise ValueError(f'bad bounds {bounds!r}')  # a bug in the caller
    if match['op']:
        lim = _bound(match['lim'])
        return {'>=': value >= lim, '>': value > lim, '<=': value <= lim,
                '<': value < lim}[match['op']]
    lo, hi = _bound(match['lo']), _bound(match['hi'])
    return ((value >= lo) if match['lo_br'] == '[' else (value > lo)) and \
        ((value <= hi) if match['hi_br'] == ']' else (value < hi))


def check_number(owner: str,
                 name: str,
                 value: Any,
                 bounds: Optional[str] = None,
                 integer: bool = False,
                 allow_none: bool = False,
                 expected: Optional[str] = None
                 ) -> Optional[Union[int, float]]:
    """Check a numeric argument; return it as a Python ``float`` (``int``
    with ``integer``), or ``None``.

    Args:
        owner (str): The loss (class name) the argument belongs to.
        name (str): The argument's name.
        value: What the config gave. Python and numpy numbers are numbers;
            bools, strings, lists, tensors and (unless ``allow_none``)
            ``None`` are not (``TypeError``). A float must be finite
            (``ValueError``); with ``integer`` it is refused even when
            integral (``TypeError``).
        bounds (str, optional): The allowed range, which the message quotes:
            ``'>= 0'``, ``'> 0'``, ``'< 1'``, or an interval such as
            ``'[0, 1)'`` or ``'(0, 1]'`` (``ValueError`` outside).
        integer (bool): Require an integer.
        allow_none (bool): Accept ``None`` (returned as is).
        expected (str, optional): The message's description of a valid
            value, instead of the one built from the arguments.

    Example:
        >>> check_number('SARLoss', 'momentum', '0.99', '[0, 1)')
        TypeError: SARLoss: `momentum` must be a number in [0, 1), got
        '0.99' (str)
    """
    if expected is None:
        kind = 'an int' if integer else 'a number'
        if bounds:
            kind += (' in ' if bounds.lstrip()[0] in '[(' else ' ') + \
                bounds.strip()
        expected = kind + (' or None' if allow_none else '')
    if value is None and allow_none:
        return None
    if not is_number(value, integer):
        _fail(owner, name, value, expected, TypeError)
    value = int(value) if integer else float(value)
    if (not integer and not math.isfinite(value)) or \
            (bounds and not _in_bounds(value, bounds)):
        _fail(owner, name, value, expected)
    return value


def check_seed(owner: str, name: str, value: Any,
               allow_none: bool = True) -> Optional[int]:
    """A seed: an int in ``[0, 2**64)`` (what a ``torch.Generator`` takes),
    or ``None`` where ``allow_none`` (the run's seed)."""
    expected = 'an int in [0, 2**64)' + (' or None' if allow_none else '')
    value = check_number(owner, name, value, '>= 0', integer=True,
                         allow_none=allow_none, expected=expected)
    if value is not None and value >= 2**64:
        _fail(owner, name, value, expected)
    return value


def check_bool(owner: str, name: str, value: Any) -> bool:
    """``True`` or ``False`` (or a numpy bool); not 0, 1, ``'yes'`` or
    ``None``."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(owner, name, value, 'True or False', TypeError)
    return bool(value)


def _one_of(choices: Sequence[Any]) -> str:
    quoted = [repr(c) for c in choices]
    if len(quoted) == 1:
        return quoted[0]
    return ', '.join(quoted[:-1]) + ' or ' + quoted[-1]


def check_choice(owner: str, name: str, value: Any,
                 choices: Sequence[str],
                 expected: Optional[str] = None) -> str:
    """One of the strings ``choices``: a non-string is a ``TypeError``, an
    unknown string a ``ValueError`` (``expected``: the message's
    description, by default the choices)."""
    expected = expected or _one_of(choices)
    if not isinstance(value, str):
        _fail(owner, name, value, expected, TypeError)
    if value not in choices:
        _fail(owner, name, value, expected)
    return value


def check_str(owner: str, name: str, value: Any,
              prefix: Optional[str] = None) -> str:
    """A string, starting with ``prefix`` when given."""
    expected = 'a str' + (f' starting with {prefix!r}' if prefix else '')
    if not isinstance(value, str):
        _fail(owner, name, value, expected, TypeError)
    if prefix and not value.startswith(prefix):
        raise ValueError(f'{owner}: `{name}` must start with {prefix!r}, '
                         f'got {value!r}')
    return value


def check_numbers(owner: str,
                  name: str,
                  value: Any,
                  bounds: Optional[str] = None,
                  length: Optional[int] = None,
                  length_note: str = '',
                  allow_none: bool = False,
                  expected: Optional[str] = None) -> Optional[List[float]]:
    """A flat sequence of numbers (a list, tuple, 1-D numpy array or
    tensor), each in ``bounds`` (see :func:`check_number`) and, with
    ``length``, that many; returned as a list of Python floats.

    A string, a dict, a set or a single number is a ``TypeError``, as is a
    non-number entry (named by its index); a wrong length or an entry out of
    range a ``ValueError``. ``length_note`` names where ``length`` comes
    from (``'num_classes=4'``), ``expected`` replaces the message's
    description.
    """
    if expected is None:
        expected = 'a sequence of numbers' + (
            f' {bounds.strip()}' if bounds else '') + \
            (' or None' if allow_none else '')
    if value is None and allow_none:
        return None
    if isinstance(value, (np.ndarray, torch.Tensor)):
        if value.ndim != 1:
            _fail(owner, name, value, expected, TypeError,
                  f' with shape {tuple(value.shape)}')
        items = value.tolist()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        _fail(owner, name, value, expected, TypeError)
    for i, item in enumerate(items):
        if not is_number(item):
            _fail(owner, name, value, expected, TypeError,
                  f'; entry {i} is {item!r} ({_type_name(item)})')
    if length is not None and len(items) != length:
        raise ValueError(f'{owner}: `{name}` must have {length_note or length}'
                         f' entries, got {len(items)}')
    floats = [float(item) for item in items]
    for i, item in enumerate(floats):
        if not math.isfinite(item) or (bounds and
                                       not _in_bounds(item, bounds)):
            _fail(owner, name, value, expected,
                  note=f'; entry {i} is {items[i]!r}')
    return floats


def check_cfg(owner: str, name: str, value: Any,
              allow_none: bool = False, note: str = '') -> Optional[dict]:
    """A config dict (``dict``, ``ConfigDict``) whose ``'type'`` is a name or
    a class; returned as a plain ``dict``."""
    expected = "a dict with a 'type'" + (' or None' if allow_none else '') + \
        note
    if value is None and allow_none:
        return None
    if not isinstance(value, Mapping):
        _fail(owner, name, value, expected, TypeError)
    if 'type' not in value:
        _fail(owner, name, dict(value), expected)
    if not isinstance(value['type'], (str, type)):
        raise TypeError(f"{owner}: `{name}`'s 'type' must be a registered "
                        f"name or a class, got {value['type']!r} "
                        f"({_type_name(value['type'])})")
    return dict(value)

"""The shared base of every feature loss.

A feature loss regularises the feature a head's classifier reads. It is
called as ``loss(feat, label, classifier=None)`` with

- ``feat``: per-pixel features ``N x C x H x W`` (segmentation, the input of
  the decode head's classifier) or per-image features ``N x C``
  (classification, the pooled feature), and
- ``label``: ``N x H x W`` (or ``N x 1 x H x W``) / ``N`` integer labels in
  ``[0, K)`` or ``ignore_index``,
- ``classifier``: the module that turns such a feature into logits (the
  decode head's ``conv_seg``, a 1x1 :class:`~torch.nn.Conv2d`, or an image
  head's :class:`~torch.nn.Linear`), for the losses that use it.

It returns a scalar tensor (named by ``loss_name``) or a dict of
``loss_*`` terms. :class:`FeatureLoss` does the common work: flattening
both layouts to ``M x C`` / ``M``, label validation, ignore handling, the
on-device veto of state updates, per-class weights, reduction and fixed
anchors; the pure helpers are in :mod:`.functional`.
"""
import math
import numbers
import re
import warnings
from collections.abc import Mapping
from typing import Any, List, NoReturn, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..anchors import build_anchors
from ..utils.dist import all_ranks_true
from .functional import NonFiniteInputWarning, upcast
from .kernels import all_finite, masked_rows

LossOutput = Union[Tensor, dict]

# --------------------------------------------------- argument checking
# One way to check every constructor argument of every loss, so that a
# config with a wrongly typed value (``loss_weight='1.0'``, ``momentum=None``,
# ``class_weight='balanced'``) fails at build time with a message naming the
# loss and the field, never with Python's own ('<' not supported between
# ...). A value of the wrong type raises ``TypeError``, one of the right type
# but out of range ``ValueError``; both read
# ``{owner}: `{name}` must be {expected}, got {value!r}`` (plus the type's
# name for a ``TypeError``).

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



class FeatureLoss(nn.Module):
    """Base class of the feature losses (SAR and the anchor, centre and
    distance-matrix losses), per pixel or per image.

    Args:
        num_classes (int, optional): K. ``SARHead`` / ``AnchorClsHead`` fill
            it from the wrapped head when omitted.
        channels (int, optional): C, the feature dimension; filled in the
            same way.
        loss_weight (float): Multiplies every returned term.
        ignore_index (int): Label value that is ignored.
        class_weight (Sequence[float], optional): Per-class weights of a
            weighted mean over samples (``sum w_y l / sum w_y``).
        reduction (str): ``'mean'`` (over valid samples), ``'sum'``.
        loss_name (str): Name of the returned term; must start with
            ``loss_``.
        validate_labels (bool): Raise on labels outside ``[0, K)`` that are
            not ``ignore_index``, and warn (:class:`NonFiniteInputWarning`)
            about a training step with non-finite inputs. Both are checked
            with one device sync per call, after the loss is computed; the
            state updates are vetoed on device either way. With False,
            out-of-range labels are treated as ignored and no sync happens.
    """

    #: :meth:`compute` takes per-pixel features as ``N x C x H x W``, not
    #: as masked ``M x C`` rows (saves a transposing copy each way).
    dense_input: bool = False

    def __init__(self,
                 num_classes: Optional[int] = None,
                 channels: Optional[int] = None,
                 loss_weight: float = 1.0,
                 ignore_index: int = 255,
                 class_weight: Optional[Sequence[float]] = None,
                 reduction: str = 'mean',
                 loss_name: str = 'loss_anchor',
                 validate_labels: bool = True) -> None:
        super().__init__()
        cls = type(self).__name__
        for field, value in (('num_classes', num_classes),
                             ('channels', channels)):
            if value is None:
                raise ValueError(
                    f'{cls}: `{field}` is required (a positive int); '
                    'SARHead and AnchorClsHead fill it from the wrapped '
                    'head when the loss config omits it')
        self.num_classes = check_number(cls, 'num_classes', num_classes,
                                        '>= 1', integer=True)
        self.channels = check_number(cls, 'channels', channels, '>= 1',
                                     integer=True)
        self.loss_weight = check_number(cls, 'loss_weight', loss_weight,
                                        '>= 0')
        self.ignore_index = check_number(cls, 'ignore_index', ignore_index,
                                         integer=True)
        self.reduction = check_choice(cls, 'reduction', reduction,
                                      ('mean', 'sum'))
        self._loss_name = check_str(cls, 'loss_name', loss_name, 'loss_')
        self.validate_labels = check_bool(cls, 'validate_labels',
                                          validate_labels)
        # this call's veto of state updates (see :meth:`state_ok`)
        self._step_ok: Optional[Tensor] = None
        self._step_flags: List[Tuple[str, Tensor]] = []
        weights = check_numbers(
            cls, 'class_weight', class_weight, '>= 0',
            length=self.num_classes,
            length_note=f'num_classes={self.num_classes}', allow_none=True)
        if weights is not None:
            self.register_buffer(
                'class_weight',
                torch.as_tensor(weights, dtype=torch.float32),
                persistent=False)
        else:
            self.class_weight = None

    def check_args(self, *checks: Tuple[str, Any, bool, str]) -> None:
        """Raise a ``ValueError`` naming the first argument that fails.

        Only for a condition the typed checks (:func:`check_number`,
        :func:`check_choice`, :func:`check_bool`, :func:`check_numbers`...)
        cannot express, on arguments they have already checked: ``ok`` is
        evaluated before the call, so on a wrongly typed value it fails
        with Python's own message.

        A number that is NaN or infinite fails whatever ``ok`` says (a
        comparison with NaN is False, but ``not x < 0`` would let it pass).

        Args:
            *checks: ``(field, value, ok, expected)`` tuples, e.g.
                ``('momentum', momentum, 0 <= momentum < 1, 'in [0, 1)')``.
        """
        for field, value, ok, expected in checks:
            if isinstance(value, (int, float)) and not isinstance(
                    value, bool) and not math.isfinite(value):
                ok = False
            if not ok:
                raise ValueError(f'{type(self).__name__}: `{field}` must be '
                                 f'{expected}, got {value!r}')

    @property
    def loss_name(self) -> str:
        """Name of the (first) returned term, as MMSeg losses expose it."""
        return self._loss_name

    # ------------------------------------------------------------ calling
    def forward(self,
                feat: Tensor,
                label: Tensor,
                classifier: Optional[nn.Module] = None) -> LossOutput:
        """Flatten and check the inputs, then :meth:`compute` the loss.

        :meth:`compute` runs with autocast disabled, on features (but for
        :attr:`dense_input`) at least float32 and zeroed at ignored
        positions. A tensor it returns is multiplied by ``loss_weight``; a
        dict of terms is returned as is (weighted by the loss itself). The
        label and finiteness checks are tensors while :meth:`compute` runs
        (:meth:`state_ok` vetoes state updates on device), read once
        afterwards (``validate_labels``): a bad label raises, non-finite
        inputs in training warn once. So does, in training, a non-finite
        returned term (``'loss'``): finite inputs can still overflow,
        e.g. squared distances of features of magnitude ~1e20 in float32;
        its finiteness is read in the same sync. A loss whose state update
        precedes such a value vetoes it with :meth:`revert_state_unless_ok`.

        Args:
            feat (Tensor): ``N x C x H x W`` or ``N x C`` features.
            label (Tensor): ``N x H x W`` or ``N`` labels.
            classifier (nn.Module, optional): The head's classifier, for the
                losses that use it.
        """
        flat, label, valid, bad = self.flatten(feat, label)
        self._step_ok = (bad == 0).all()
        self._step_flags = []
        if flat.dim() == 2:
            self._step_ok = self._step_ok & all_finite(flat)
            self._step_flags.append(('features', self._step_ok))
        try:
            with torch.autocast(flat.device.type, enabled=False):
                out = self.compute(flat, label, valid, classifier)
            flags = self._step_flags
            if self.validate_labels and self.training:
                flags.append(('loss', self._terms_finite(out)))
        finally:
            self._step_ok, self._step_flags = None, []
        if self.validate_labels:
            self._report(bad, flags)
        return out if isinstance(out, dict) else self.loss_weight * out

    def compute(self, flat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module]) -> LossOutput:
        """The loss on flattened ``M x C`` features, ``M`` labels (ignored
        entries replaced by 0) and the ``M`` valid mask.

        A loss with :attr:`dense_input` gets per-pixel features as they
        came, ``N x C x H x W`` and *not* masked (``M = N H W`` in NHWC
        order for ``label`` and ``valid``); it keeps ignored positions out
        of its value and gradients itself (:mod:`.kernels`) and passes the
        finiteness of its valid features to :meth:`state_ok` as
        ``('features', tensor)``.

        No host sync in it (``.item()``, ``.cpu()``, ``nonzero()``, mask
        indexing, a branch on a tensor): :meth:`_report` syncs once after."""
        raise NotImplementedError

    # -------------------------------------------------------------- state
    def state_ok(self, *also_finite: Tuple[str, Tensor]) -> Tensor:
        """Scalar bool tensor: may this call update the loss' state?

        False when a label is out of range or a (valid) feature is not
        finite, or when any of ``also_finite`` (``(what, tensor)`` pairs,
        e.g. ``('classifier output', logits)``) holds a non-finite value;
        those are named in the warning. Usable only inside
        :meth:`compute`. Each update must also be agreed by every rank
        (:func:`momentum_update_` and ``SARLoss`` do this).
        """
        if self._step_ok is None:
            raise RuntimeError('state_ok() is only valid inside compute()')
        ok = self._step_ok
        for what, tensor in also_finite:
            finite = all_finite(tensor)
            self._step_flags.append((what, finite))
            ok = ok & finite
        return ok

    @staticmethod
    def _terms_finite(out: LossOutput) -> Tensor:
        """Scalar bool tensor: is every returned term finite? No sync."""
        terms = list(out.values()) if isinstance(out, dict) else [out]
        finite = all_finite(terms[0])
        for term in terms[1:]:
            finite = finite & all_finite(term)
        return finite

    @torch.no_grad()
    def revert_state_unless_ok(self, state: Sequence[Tensor],
                               saved: Sequence[Tensor],
                               *also_finite: Tuple[str, Tensor]) -> Tensor:
        """Undo this call's update of ``state`` unless it was allowed.

        For what is known only after the update, such as the loss computed
        with the updated centres: from finite but huge features (~1e20)
        the squared distances overflow float32 while the centres, sums of
        the features, do not. Every tensor of ``state`` is set back to its
        copy in ``saved`` (taken before the update) unless
        :meth:`state_ok` holds with ``also_finite`` (``(what, tensor)``
        pairs, named in the warning) on every rank (one all-reduce of a
        flag, no host sync). Only inside :meth:`compute`. The tensors of
        ``state`` are written in place: the computation of the loss must
        not have saved them for its backward (use a copy there).

        Returns:
            Tensor: The rank-agreed decision (True: the update stays).
        """
        ok = all_ranks_true(self.state_ok(*also_finite))
        for buf, old in zip(state, saved):
            buf.copy_(torch.where(ok, buf, old))
        return ok

    @property
    def state_names(self) -> List[str]:
        """What training changes in this loss (named in the warning)."""
        return []

    def _report(self, bad: Tensor, flags: List[Tuple[str, Tensor]]) -> None:
        """One host sync: raise on a bad label, warn on non-finite input.

        Args:
            bad (Tensor): ``M`` labels, the out-of-range value where a label
                is out of range, else 0 (never a bad value).
            flags (list): ``(what, finite)`` pairs of this call.
        """
        worst = bad.reshape(-1)[bad.abs().argmax()] if bad.numel() \
            else bad.new_zeros(())
        values = torch.stack([bad.count_nonzero().double(), worst.double()] +
                             [(~f).double() for _, f in flags]).tolist()
        n_bad, worst_label, nonfinite = int(values[0]), values[1], values[2:]
        if n_bad:
            raise ValueError(
                f'{type(self).__name__}: labels must be in [0, '
                f'{self.num_classes - 1}] (num_classes={self.num_classes}) '
                f'or ignore_index={self.ignore_index}; found label '
                f'{int(worst_label)} ({n_bad} position(s))')
        what = list(dict.fromkeys(  # in order, once each
            w for (w, _), v in zip(flags, nonfinite) if v))
        if len(what) > 1 and 'loss' in what:
            what.remove('loss')  # explained by the non-finite input
        if what and self.training:
            names = self.state_names
            kept = (f'its state ({", ".join(names)}) was left unchanged'
                    if names else 'it has no state to protect')
            if what == ['loss']:
                found = ('a non-finite loss from finite inputs (a value '
                         'beyond the range of the float type, e.g. squared '
                         'distances of features of magnitude ~1e19 or more '
                         'in float32)')
            else:
                found = ('non-finite values in this training step\'s '
                         f'{" and ".join(what)}')
            warnings.warn(
                f'{type(self).__name__} ({self.loss_name}): {found}; {kept}',
                NonFiniteInputWarning, stacklevel=3)

    # ------------------------------------------------------------ anchors
    def register_anchors(self,
                         kind: str,
                         seed: Optional[int] = 0,
                         scale: float = 1.0,
                         name: str = 'anchors') -> None:
        """Register fixed, seeded ``K x C`` anchors as buffer ``name``.

        ``seed`` is the loss' own (``anchor_seed``), independent of the
        run's ``randomness.seed``. ``None`` follows the run's seed instead:
        :func:`torch.initial_seed`, the seed MMEngine's ``set_random_seed``
        gave torch (the same on every rank unless ``diff_rank_seed``, which
        would give each rank its own anchors). The global RNG is not
        consumed either way.
        """
        if seed is None:
            seed = torch.initial_seed()
        self.register_buffer(
            name,
            build_anchors(kind, self.num_classes, self.channels, seed, scale))

    # ------------------------------------------------------------- inputs
    def flatten(self, feat: Tensor, label: Tensor
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Flatten features and labels, keeping every position.

        Args:
            feat (Tensor): ``N x C x H x W`` or ``N x C``.
            label (Tensor): ``N x H x W``, ``N x 1 x H x W`` or ``N``.

        Returns:
            Tuple[Tensor, Tensor, Tensor, Tensor]: features ``M x C`` (at
            least float32, zero at invalid positions; per-pixel features
            of a :attr:`dense_input` loss: ``feat`` itself), labels ``M`` with
            invalid entries replaced by 0 (safe to gather with), the boolean
            ``valid`` mask ``M``, and ``M`` labels that hold the
            out-of-range value where a label is neither in ``[0, K)`` nor
            ``ignore_index`` and 0 elsewhere (0 is always in range).
            Out-of-range labels count as invalid; :meth:`forward` raises on
            them.
        """
        cls = type(self).__name__
        if feat.dim() == 4:
            n, c, h, w = feat.shape
            if label.dim() == 4 and label.shape[1] == 1:
                label = label[:, 0]
            if tuple(label.shape) != (n, h, w):
                raise ValueError(
                    f'{cls}: per-pixel features {tuple(feat.shape)} need '
                    f'labels of shape {(n, h, w)}, got {tuple(label.shape)}')
        elif feat.dim() == 2:
            c = feat.shape[1]
            if label.dim() != 1 or label.shape[0] != feat.shape[0]:
                raise ValueError(
                    f'{cls}: per-image features {tuple(feat.shape)} need '
                    f'labels of shape ({feat.shape[0]},), got '
                    f'{tuple(label.shape)}')
        else:
            raise ValueError(f'{cls}: features must be N x C x H x W or '
                             f'N x C, got shape {tuple(feat.shape)}')
        if c != self.channels:
            raise ValueError(f'{cls}: expected {self.channels} feature '
                             f'channels (`channels`), got {c}')
        if label.is_floating_point():
            raise TypeError(f'{cls}: labels must be an integer tensor, got '
                            f'{label.dtype}')
        label = label.long()
        in_range = (label >= 0) & (label < self.num_classes)
        bad = torch.where((label != self.ignore_index) & ~in_range, label,
                          torch.zeros_like(label)).reshape(-1)
        valid = in_range & (label != self.ignore_index)
        # mask before any arithmetic: a NaN at an ignored position must not
        # reach a sum (or a gradient) anywhere
        if feat.dim() == 4:
            flat = feat if self.dense_input else masked_rows(feat, valid)
        else:
            flat = torch.where(valid[:, None], upcast(feat), 0.0)
        valid = valid.reshape(-1)
        label = torch.where(valid, label.reshape(-1), 0)
        return flat, label, valid, bad

    # ---------------------------------------------------------- reduction
    def reduce(self, per_sample: Tensor, label: Tensor,
               valid: Tensor) -> Tensor:
        """Reduce per-sample losses ``M`` over the valid samples.

        Ignored samples contribute exactly zero (value and gradient). With
        no valid sample, the result is a zero that still has a graph.
        """
        weight = valid.to(per_sample.dtype)
        if self.class_weight is not None:
            weight = weight * self.class_weight.to(per_sample)[label]
        total = (torch.where(valid, per_sample, per_sample.new_zeros(())) *
                 weight).sum()
        if self.reduction == 'sum':
            return total
        return total / weight.sum().clamp(min=torch.finfo(weight.dtype).eps)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, channels={self.channels}, '
                f'loss_weight={self.loss_weight}, loss_name={self.loss_name}')

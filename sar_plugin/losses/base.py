"""The shared base of every feature loss.

A feature loss regularises the feature a head's classifier reads. It is
called as ``loss(feat, label, classifier=None)`` with ``feat`` the
``N x C x H x W`` features (per pixel: the decode head's classifier input;
per image: ``N x C x 1 x 1``, and ``N x C`` is taken as that), ``label`` the
``N x H x W`` (``N x 1 x H x W``; ``N`` for ``N x C``) integer labels in
``[0, K)`` or ``ignore_index``, and ``classifier`` the module that turns a
feature into logits (``conv_seg``, an ``nn.Linear``) for the losses that use
it. It returns a scalar (named ``loss_name``) or a dict of ``loss_*`` terms,
each multiplied by ``loss_weight``.

A loss implements :meth:`FeatureLoss.compute`, which returns its terms, or a
:class:`Step` with the terms and the state it would write. The write
happens in one place, :meth:`FeatureLoss._commit`, once per training call:
only when the labels are in range and the step is finite (every term, and
the tensors the loss names), agreed over ranks, by a device-side select.
Torch only: nothing here needs MMSeg.
"""
import warnings
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..anchors import build_anchors
from .checks import (check_bool, check_choice, check_number, check_numbers,
                     check_str)
from .dist import all_ranks_true
from .functional import NonFiniteInputWarning
from .kernels import all_finite

LossOutput = Union[Tensor, Dict[str, Tensor]]


@dataclass
class Step:
    """What :meth:`FeatureLoss.compute` returns for a loss with state.

    Attributes:
        terms: The loss (a tensor, named ``loss_name``) or a dict of terms,
            before ``loss_weight``.
        state: Buffer name -> the value this step would write.
        checked: ``(what, tensor)`` pairs that are finite exactly when what
            the loss read is (named in the warning), besides the terms.
    """
    terms: LossOutput
    state: Dict[str, Tensor] = field(default_factory=dict)
    checked: Sequence[Tuple[str, Tensor]] = ()


class FeatureLoss(nn.Module):
    """Base class of the feature losses (SAR and the anchor, centre and
    distance-matrix losses), per pixel or per image.

    Args:
        num_classes (int): K. ``SARHead`` / ``AnchorClsHead`` fill it from
            the wrapped head when a config omits it.
        channels (int): C, the feature dimension; filled in the same way.
        loss_weight (float): Multiplies every returned term.
        ignore_index (int): Label value that is ignored.
        class_weight (Sequence[float], optional): Per-class weights of a
            weighted mean over samples (``sum w_y l / sum w_y``).
        reduction (str): ``'mean'`` (over valid samples) or ``'sum'``.
        loss_name (str): Name (prefix) of the returned terms; starts with
            ``loss_``.
        validate_labels (bool): In training, read the step's validity once
            (one host sync) to raise on labels outside ``[0, K)`` that are
            not ``ignore_index`` and to warn
            (:class:`NonFiniteInputWarning`) when the step was vetoed.
            False: no sync; such labels count as ignored, and the veto
            still applies on device.
    """

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
        for name, value in (('num_classes', num_classes),
                            ('channels', channels)):
            if value is None:
                raise ValueError(
                    f'{cls}: `{name}` is required (a positive int); '
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
        weights = check_numbers(
            cls, 'class_weight', class_weight, '>= 0',
            length=self.num_classes,
            length_note=f'num_classes={self.num_classes}', allow_none=True)
        if weights is not None:
            self.register_buffer(
                'class_weight', torch.tensor(weights, dtype=torch.float32),
                persistent=False)
        else:
            self.class_weight = None
        self._held: Optional[Dict[str, Tensor]] = None

    @property
    def loss_name(self) -> str:
        """Name of the (first) returned term, as MMSeg losses expose it."""
        return self._loss_name

    def compute(self, feat: Tensor, label: Tensor, valid: Tensor,
                classifier: Optional[nn.Module]) -> Union[LossOutput, Step]:
        """The loss, autocast disabled.

        Args:
            feat (Tensor): ``N x C x H x W`` features as they came (any float
                dtype, *not* masked: keep invalid positions out of values
                and gradients, e.g. with :mod:`.kernels`).
            label (Tensor): ``M = N H W`` labels in NHWC order, invalid
                entries 0 (safe to gather with).
            valid (Tensor): ``M`` bool.
            classifier (nn.Module, optional): The head's classifier.

        No host sync in it (``.item()``, mask indexing, a branch on a tensor).
        """
        raise NotImplementedError

    def forward(self, feat: Tensor, label: Tensor,
                classifier: Optional[nn.Module] = None) -> LossOutput:
        feat, label = self._check_inputs(feat, label)
        label = label.long()
        in_range = (label >= 0) & (label < self.num_classes)
        valid = in_range & (label != self.ignore_index)
        bad = torch.where(in_range | (label == self.ignore_index), 0, label)
        valid = valid.reshape(-1)
        label = torch.where(valid, label.reshape(-1), 0)
        with torch.autocast(feat.device.type, enabled=False):
            step = self.compute(feat, label, valid, classifier)
        if not isinstance(step, Step):
            step = Step(step)
        terms = step.terms if isinstance(step.terms, dict) else \
            {self.loss_name: step.terms}
        if self.training:
            self._commit(step, list(terms.values()), bad.reshape(-1))
        out = {name: self.loss_weight * t for name, t in terms.items()}
        return out if isinstance(step.terms, dict) else out[self.loss_name]

    def log_vars(self) -> Dict[str, Tensor]:
        """Scalars a training loop may log next to the loss terms, not
        losses: names without ``loss`` (MMEngine sums only the entries
        whose name has it)."""
        return {}

    # -------------------------------------------------------------- state
    @torch.no_grad()
    def _commit(self, step: Step, terms: list, bad: Tensor) -> None:
        """Write ``step.state`` if the step is valid on every rank: labels
        in range, every term and every checked tensor finite."""
        flags = [('labels', bad.count_nonzero() == 0)]
        flags += [(what, all_finite(t)) for what, t in step.checked]
        flags.append(('loss', all_finite(torch.stack(
            [t.detach().float() for t in terms]))))
        ok = flags[0][1]
        for _, flag in flags[1:]:
            ok = ok & flag
        ok = all_ranks_true(ok)
        for name, value in step.state.items():
            old = getattr(self, name)
            new = torch.where(ok, value.detach().to(old.dtype), old)
            if self._held is None:
                old.copy_(new)
            else:  # keep the tensor itself, for restore_state()
                self._held.setdefault(name, old)
                setattr(self, name, new)
        if self.validate_labels:
            self._report(bad, flags, list(step.state))

    def _report(self, bad: Tensor, flags: list, state: list) -> None:
        """The one host sync: raise on a bad label, warn on a veto."""
        worst = bad[bad.abs().argmax()] if bad.numel() else bad.new_zeros(())
        values = torch.stack([bad.count_nonzero().double(), worst.double()] +
                             [(~f).double() for _, f in flags[1:]]).tolist()
        if values[0]:
            raise ValueError(
                f'{type(self).__name__}: labels must be in [0, '
                f'{self.num_classes - 1}] (num_classes={self.num_classes}) '
                f'or ignore_index={self.ignore_index}; found label '
                f'{int(values[1])} ({int(values[0])} position(s))')
        what = list(dict.fromkeys(
            w for (w, _), v in zip(flags[1:], values[2:]) if v))
        if not what:
            return
        if what == ['loss']:
            found = ('a non-finite loss from finite inputs (a value beyond '
                     'the range of the float type, e.g. squared distances of '
                     'features of magnitude ~1e19 or more in float32)')
        else:
            found = ('non-finite values in this training step\'s '
                     + ' and '.join(w for w in what if w != 'loss'))
        kept = (f'its state ({", ".join(state)}) was left unchanged'
                if state else 'it has no state to protect')
        warnings.warn(f'{type(self).__name__} ({self.loss_name}): {found}; '
                      f'{kept}', NonFiniteInputWarning, stacklevel=4)

    def hold_state(self) -> None:
        """Keep the state as it is now until :meth:`release_state` or
        :meth:`restore_state` (an optimizer step that may be skipped, see
        ``AnchorStateHook``): later writes rebind the buffers instead of
        overwriting them, so nothing is copied."""
        if self._held is None:
            self._held = {}

    def release_state(self) -> None:
        """The held step was taken: forget the old state."""
        self._held = None

    def restore_state(self) -> None:
        """The held step was skipped: put the old state back."""
        for name, old in (self._held or {}).items():
            setattr(self, name, old)
        self._held = None

    # ------------------------------------------------------------ helpers
    def register_anchors(self, kind: str, seed: Optional[int] = 0,
                         scale: float = 1.0, name: str = 'anchors') -> None:
        """Register fixed, seeded ``K x C`` anchors as buffer ``name``.

        ``seed`` is the loss' own (``anchor_seed``), independent of the
        run's ``randomness.seed``; ``None`` follows the run's seed
        (:func:`torch.initial_seed`, the same on every rank unless
        ``diff_rank_seed``). The global RNG is not consumed either way.
        """
        if seed is None:
            seed = torch.initial_seed()
        self.register_buffer(
            name,
            build_anchors(kind, self.num_classes, self.channels, seed, scale))

    def reduce(self, per_sample: Tensor, label: Tensor,
               valid: Tensor) -> Tensor:
        """Reduce per-sample losses ``M`` over the valid samples: ignored
        ones contribute exactly zero (value and gradient); with no valid
        sample, a zero that still has a graph."""
        weight = valid.to(per_sample.dtype)
        if self.class_weight is not None:
            weight = weight * self.class_weight.to(per_sample)[label]
        total = (torch.where(valid, per_sample, 0.0) * weight).sum()
        if self.reduction == 'sum':
            return total
        return total / weight.sum().clamp(min=torch.finfo(weight.dtype).eps)

    def _check_inputs(self, feat: Tensor,
                      label: Tensor) -> Tuple[Tensor, Tensor]:
        """``N x C x H x W`` features and ``N x H x W`` labels, or a
        ``ValueError``/``TypeError`` naming what is wrong."""
        cls = type(self).__name__
        if feat.dim() == 2:  # per-image features: one 1 x 1 "pixel" each
            if label.dim() != 1 or label.shape[0] != feat.shape[0]:
                raise ValueError(
                    f'{cls}: per-image features {tuple(feat.shape)} need '
                    f'labels of shape ({feat.shape[0]},), got '
                    f'{tuple(label.shape)}')
            feat, label = feat[:, :, None, None], label[:, None, None]
        if feat.dim() != 4:
            raise ValueError(f'{cls}: features must be N x C x H x W or '
                             f'N x C, got shape {tuple(feat.shape)}')
        n, c, h, w = feat.shape
        if label.dim() == 4 and label.shape[1] == 1:
            label = label[:, 0]
        if tuple(label.shape) != (n, h, w):
            raise ValueError(
                f'{cls}: per-pixel features {tuple(feat.shape)} need '
                f'labels of shape {(n, h, w)}, got {tuple(label.shape)}')
        if c != self.channels:
            raise ValueError(f'{cls}: expected {self.channels} feature '
                             f'channels (`channels`), got {c}')
        if label.is_floating_point():
            raise TypeError(f'{cls}: labels must be an integer tensor, got '
                            f'{label.dtype}')
        return feat, label

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, channels={self.channels}, '
                f'loss_weight={self.loss_weight}, loss_name={self.loss_name}')

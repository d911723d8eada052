"""Cross-entropy for image classification with label smoothing and
class-balanced weights (the long-tail baselines' ``loss_cls``)."""
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import (check_choice, check_number, check_numbers,
                   check_str)


def class_balanced_weights(counts: Sequence[float],
                           beta: Optional[float] = None) -> np.ndarray:
    """Per-class weights from training counts, normalised to mean 1.

    ``beta=None``: inverse frequency ``1 / n_k``; else the effective number
    of samples of Cui et al. (CVPR 2019), ``(1 - beta) / (1 - beta^n_k)``.
    """
    n = np.asarray(counts, np.float64)
    if n.ndim != 1 or (n <= 0).any():
        raise ValueError(f'class_counts must be positive per-class counts, '
                         f'got {list(counts)}')
    if beta is None:
        w = 1.0 / n
    else:
        if not 0 <= beta < 1:
            raise ValueError(f'beta must be in [0, 1), got {beta}')
        w = (1.0 - beta) / (1.0 - np.power(beta, n))
    return w / w.mean()


class ClsCrossEntropyLoss(nn.Module):
    """Cross-entropy over ``N x K`` logits and ``N`` labels.

    Args:
        label_smoothing (float): ``torch``'s label smoothing. Default 0.
        class_weight (list[float] | str, optional): Per-class weights, or
            ``'inverse'`` / ``'effective'`` to derive them from
            ``class_counts`` (see :func:`class_balanced_weights`).
        class_counts (list[int], optional): Training samples per class, for
            ``class_weight='inverse'|'effective'``.
        beta (float): ``beta`` of ``'effective'``. Default 0.9999.
        loss_weight (float): Default 1.
        loss_name (str): Default ``'loss_cls'``.
    """

    def __init__(self,
                 label_smoothing: float = 0.0,
                 class_weight: Optional[Union[Sequence[float], str]] = None,
                 class_counts: Optional[Sequence[int]] = None,
                 beta: float = 0.9999,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_cls') -> None:
        super().__init__()
        cls = type(self).__name__
        self.label_smoothing = check_number(cls, 'label_smoothing',
                                            label_smoothing, '[0, 1)')
        self.loss_weight = check_number(cls, 'loss_weight', loss_weight,
                                        '>= 0')
        self._loss_name = check_str(cls, 'loss_name', loss_name, 'loss_')
        beta = check_number(cls, 'beta', beta, '[0, 1)')
        class_counts = check_numbers(cls, 'class_counts', class_counts,
                                     '> 0', allow_none=True)
        if isinstance(class_weight, str):
            class_weight = check_choice(
                cls, 'class_weight', class_weight, ('inverse', 'effective'),
                expected="a sequence of numbers >= 0, 'inverse', "
                "'effective' or None")
            if class_counts is None:
                raise ValueError(f'{cls}: `class_weight`={class_weight!r} '
                                 'needs class_counts (training samples per '
                                 'class)')
            class_weight = class_balanced_weights(
                class_counts, beta if class_weight == 'effective' else None)
        else:
            class_weight = check_numbers(
                cls, 'class_weight', class_weight, '>= 0', allow_none=True,
                expected="a sequence of numbers >= 0, 'inverse', "
                "'effective' or None")
        weight = None if class_weight is None else torch.as_tensor(
            np.asarray(class_weight, np.float32))
        self.register_buffer('class_weight', weight, persistent=False)

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        if logits.dim() != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(f'ClsCrossEntropyLoss expects N x K logits and N '
                             f'labels, got {tuple(logits.shape)} and '
                             f'{tuple(labels.shape)}')
        weight = self.class_weight
        if weight is not None and weight.numel() != logits.shape[1]:
            raise ValueError(f'class_weight has {weight.numel()} entries for '
                             f'{logits.shape[1]} classes')
        return self.loss_weight * F.cross_entropy(
            logits.float(), labels.long(),
            weight=None if weight is None else weight.to(logits.device),
            label_smoothing=self.label_smoothing)

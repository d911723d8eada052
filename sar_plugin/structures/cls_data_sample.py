"""The data sample of image classification: one label per image."""
from typing import Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement
from torch import Tensor


def _label_tensor(label: Union[int, np.integer, Tensor, np.ndarray]) -> Tensor:
    """``label`` as a LongTensor of shape ``(1,)``."""
    if isinstance(label, (np.ndarray, Tensor)):
        label = torch.as_tensor(label)
        if label.numel() != 1 or label.is_floating_point():
            raise ValueError('gt_label must hold exactly one integer class '
                             f'index, got {label.dtype} of shape '
                             f'{tuple(label.shape)}')
        return label.reshape(1).long()
    if isinstance(label, (bool, np.bool_)) or not isinstance(
            label, (int, np.integer)):
        raise TypeError('gt_label must be an int or a one-element tensor, '
                        f'got {type(label).__name__}')
    return torch.tensor([int(label)], dtype=torch.long)


def _tensor_field(name: str) -> property:
    """A tensor-typed data field stored as ``_<name>`` (MMEngine's
    ``SegDataSample`` spells each one out)."""
    private = f'_{name}'

    def fget(self) -> Tensor:
        return getattr(self, private)

    def fset(self, value: Tensor) -> None:
        self.set_field(value, private, dtype=torch.Tensor)

    def fdel(self) -> None:
        delattr(self, private)

    return property(fget, fset, fdel, doc=f'``{name}`` tensor field.')


class ClsDataSample(BaseDataElement):
    """Annotations and predictions of one classified image.

    Fields (all :class:`torch.Tensor`, optional):

    - ``gt_label``: ground-truth class, LongTensor of shape ``(1,)``.
    - ``pred_label``: predicted class, LongTensor of shape ``(1,)``.
    - ``pred_score``: class scores, FloatTensor of shape ``(num_classes,)``.

    Image meta information (``img_path``, ``ori_shape``...) goes to
    ``metainfo`` as in every MMEngine data element.

    Examples:
        >>> sample = ClsDataSample().set_gt_label(3)
        >>> sample.gt_label
        tensor([3])
    """

    def set_gt_label(self, label: Union[int, Tensor]) -> 'ClsDataSample':
        """Set ``gt_label`` from an int or a one-element tensor.

        Returns:
            ClsDataSample: ``self``, for chaining.
        """
        self.gt_label = _label_tensor(label)
        return self

    def set_pred_score(self, score: Tensor) -> 'ClsDataSample':
        """Set ``pred_score`` (shape ``(num_classes,)``) and ``pred_label``
        (its argmax, shape ``(1,)``).

        Returns:
            ClsDataSample: ``self``, for chaining.
        """
        if not isinstance(score, Tensor) or score.dim() != 1:
            raise ValueError('pred_score must be a 1-D tensor of class '
                             f'scores, got {getattr(score, "shape", score)}')
        self.pred_score = score
        self.pred_label = score.argmax().reshape(1)
        return self

    gt_label = _tensor_field('gt_label')
    pred_label = _tensor_field('pred_label')
    pred_score = _tensor_field('pred_score')
